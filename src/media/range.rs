//! `Range: bytes=...` requests (RFC 9110 §14): one range of a file, as R2 reads it.

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// No header, or one we serve whole (another unit, several ranges, bad syntax).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range that lies past the end: 416.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ranged::Whole };
    let Some((first, last)) = spec.trim().split_once('-') else { return Ranged::Whole };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let number = |s: &str| if s.is_empty() { Ok(None) } else { s.trim().parse::<u64>().map(Some) };
    match (number(first), number(last)) {
        (Ok(Some(start)), Ok(last)) => {
            if last.is_some_and(|l| l < start) {
                return Ranged::Whole;
            }
            if start >= size {
                return Ranged::Unsatisfiable;
            }
            let end = last.map_or(size - 1, |l| l.min(size - 1));
            Ranged::Part { start, end }
        }
        (Ok(None), Ok(Some(suffix))) if suffix > 0 && size > 0 => {
            Ranged::Part { start: size.saturating_sub(suffix), end: size - 1 }
        }
        (Ok(None), Ok(Some(_))) => Ranged::Unsatisfiable,
        _ => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse(None, 10), Ranged::Whole);
        assert_eq!(parse(Some("bytes=0-4"), 10), Ranged::Part { start: 0, end: 4 });
        assert_eq!(parse(Some("bytes=5-"), 10), Ranged::Part { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=5-100"), 10), Ranged::Part { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), Ranged::Part { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=-30"), 10), Ranged::Part { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=10-"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-5"), 0), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=4-2"), 10), Ranged::Whole);
        assert_eq!(parse(Some("bytes=0-1,3-4"), 10), Ranged::Whole);
        assert_eq!(parse(Some("items=0-1"), 10), Ranged::Whole);
        assert_eq!(parse(Some("bytes=x-1"), 10), Ranged::Whole);
    }
}
