//! The logic of `npm run appservice` (`scripts/appservice` runs it through `src/bin/appservice.rs`
//! and `wrangler d1 execute`): it turns a bridge's registration file into the one statement that
//! stores it, or refuses it with a message that names the problem.

use serde::Deserialize;
use serde_json::Value;

use super::registration::{validate, Existing};
use crate::storage::appservices;
use crate::time::now_ms;
use crate::tokens::token_hash;

pub use appservices::{LIST, SELECT_EXISTING};

/// What `wrangler d1 execute --json` prints: one result per statement.
#[derive(Deserialize)]
struct Executed<T> {
    results: Vec<T>,
}

fn results<T: for<'de> Deserialize<'de>>(wrangler_json: &str) -> Result<Vec<T>, String> {
    let executed: Vec<Executed<T>> =
        serde_json::from_str(wrangler_json).map_err(|e| format!("unexpected output from wrangler: {e}"))?;
    Ok(executed.into_iter().flat_map(|e| e.results).collect())
}

/// The statement that adds the registration in `yaml`, given the stored ones (as wrangler
/// printed the result of [`SELECT_EXISTING`]).
pub fn add(yaml: &str, server_name: &str, existing_json: &str) -> Result<String, String> {
    let value: Value = serde_yaml::from_str(yaml).map_err(|e| format!("not a YAML registration: {e}"))?;
    let existing: Vec<Existing> = results(existing_json)?;
    let service = validate(value, server_name, &existing)?;
    let registration = &service.registration;
    let stored = serde_json::to_string(registration).map_err(|e| e.to_string())?;
    Ok(appservices::insert_sql(
        &registration.id,
        &token_hash(&registration.as_token),
        &registration.hs_token,
        service.sender.as_str(),
        &stored,
        now_ms(),
    ))
}

/// The statement that removes a service; it returns the removed ID.
pub fn remove(id: &str) -> String {
    format!("{} RETURNING id", appservices::delete_sql(id))
}

/// Whether the removal's output shows a removed row.
pub fn removed(wrangler_json: &str) -> Result<bool, String> {
    Ok(!results::<Value>(wrangler_json)?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
id: telegram
url: http://127.0.0.1:29317
as_token: "secret-as"
hs_token: "secret-hs"
sender_localpart: telegrambot
namespaces:
  users:
  - exclusive: true
    regex: '@telegram_.*:example\.org'
  aliases:
  - exclusive: true
    regex: \#telegram_.*:example\.org
rate_limited: false
de.sorunome.msc2409.push_ephemeral: true
"#;

    #[test]
    fn a_bridge_registration_becomes_one_insert_without_its_as_token() {
        let sql = add(YAML, "example.org", r#"[{"results": [], "success": true}]"#).unwrap();
        assert!(sql.starts_with("INSERT INTO appservices"));
        assert!(sql.contains("'@telegrambot:example.org'"));
        assert!(sql.contains(&token_hash("secret-as")));
        assert!(!sql.contains("secret-as"));
        assert!(sql.contains("\"receive_ephemeral\":true"));
    }

    #[test]
    fn a_reused_token_is_refused() {
        let existing = format!(
            r#"[{{"results": [{{"id": "other", "as_token_hash": "{}", "hs_token": "x"}}]}}]"#,
            token_hash("secret-as")
        );
        assert!(add(YAML, "example.org", &existing).unwrap_err().contains("`as_token` is already used"));
        assert!(add("id: [", "example.org", "[]").unwrap_err().contains("not a YAML registration"));
    }
}
