//! Exclusive namespaces: what a service reserves, no one else may register or create.

use crate::appservice::{registry, Scope};
use crate::auth::Requester;
use crate::error::{ErrorKind, MatrixError, Result};
use crate::storage::Db;

/// `M_EXCLUSIVE` when a service other than `allowed` reserves the user ID.
pub async fn check_user(db: &Db, server_name: &str, user_id: &str, allowed: Option<&str>) -> Result<()> {
    let services = registry::all(db, server_name).await?;
    if services
        .iter()
        .any(|e| Some(e.service.id()) != allowed && e.service.user_in_namespace(user_id, Scope::Exclusive))
    {
        return Err(exclusive("This user ID is reserved by an application service"));
    }
    Ok(())
}

/// Whether the requester may create the alias: a service only inside its alias namespace,
/// anyone else only outside every exclusive one.
pub async fn check_alias(db: &Db, server_name: &str, requester: &Requester, alias: &str) -> Result<()> {
    if let Some(service) = &requester.appservice {
        if !service.alias_in_namespace(alias, Scope::Any) {
            return Err(exclusive("This application service has not reserved this kind of alias"));
        }
        return Ok(());
    }
    let services = registry::all(db, server_name).await?;
    if services.iter().any(|e| e.service.alias_in_namespace(alias, Scope::Exclusive)) {
        return Err(exclusive("This alias is reserved by an application service"));
    }
    Ok(())
}

pub fn exclusive(message: &'static str) -> crate::error::Error {
    MatrixError::new(ErrorKind::Exclusive, message).into()
}
