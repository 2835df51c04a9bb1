//! The native half of `npm run appservice` (see `scripts/appservice`): it renders and checks the
//! SQL that the script runs with `wrangler d1 execute`.
//!
//! `appservice existing-sql | list-sql`: prints a query.
//! `appservice add FILE SERVER_NAME < existing.json`: prints the insert, or the problem (exit 1).
//! `appservice remove-sql ID` and `appservice removed < result.json`: removal and its check.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use std::io::Read;
    use stratus::appservice::command;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdin = || {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).map(|_| input).map_err(|e| e.to_string())
    };
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["existing-sql"] => Ok(command::SELECT_EXISTING.to_owned()),
        ["list-sql"] => Ok(command::LIST.to_owned()),
        ["add", file, server_name] => std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {file}: {e}"))
            .and_then(|yaml| command::add(&yaml, server_name, &stdin()?)),
        ["remove-sql", id] => Ok(command::remove(id)),
        ["removed"] => stdin().and_then(|out| command::removed(&out)).and_then(|removed| match removed {
            true => Ok("removed".into()),
            false => Err("no such application service".into()),
        }),
        _ => Err("usage: appservice add FILE SERVER_NAME | existing-sql | list-sql | remove-sql ID | removed".into()),
    };
    match outcome {
        Ok(out) => println!("{out}"),
        Err(problem) => {
            eprintln!("{problem}");
            std::process::exit(1);
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
