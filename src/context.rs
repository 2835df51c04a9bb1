//! The handler context: what every handler gets from the router (request, requester, bindings).
//! It lives apart from the router so that handlers depend on it, not on the route table.

use std::future::Future;
use std::rc::Rc;

use ruma_common::UserId;
use worker::Env;

use crate::auth::{self, Requester};
use crate::config::Config;
use crate::error::{internal, ErrorKind, MatrixError, Result};
use crate::http::Incoming;
use crate::storage::Db;

/// Everything a handler gets: the request, who sent it, and the server's bindings.
pub struct Ctx {
    pub config: Rc<Config>,
    pub env: Env,
    pub db: Db,
    pub req: Incoming,
    pub(crate) params: Vec<(&'static str, String)>,
    pub(crate) requester: Option<Requester>,
    pub(crate) worker_ctx: Rc<worker::Context>,
}

impl Ctx {
    /// Runs `work` after the response, which does not wait for it.
    pub fn in_background(&self, work: impl Future<Output = ()> + 'static) {
        self.worker_ctx.wait_until(work);
    }

    /// A path parameter by its name in the route table.
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }

    /// The authenticated caller; only routes with an access-token scheme have one.
    pub fn requester(&self) -> Result<&Requester> {
        self.requester
            .as_ref()
            .ok_or_else(|| internal("router", "handler of an unauthenticated route asked for a requester"))
    }

    /// The application service behind the request's `as_token`, on a `NoneOrAppservice` route.
    pub fn appservice(&self) -> Result<(&Requester, &Rc<crate::appservice::Service>)> {
        match self.requester.as_ref().and_then(|r| Some((r, r.appservice.as_ref()?))) {
            Some(found) => Ok(found),
            None if auth::access_token(&self.req)?.is_some() => Err(MatrixError::new(
                ErrorKind::UnknownToken { soft_logout: false },
                "The access token is not an application service's",
            )
            .into()),
            None => Err(MatrixError::new(ErrorKind::MissingToken, "Missing application service token").into()),
        }
    }

    /// The `userId` path parameter: `M_INVALID_PARAM` unless it is a user ID.
    pub fn path_user(&self) -> Result<&UserId> {
        <&UserId>::try_from(self.param("userId"))
            .map_err(|_| MatrixError::new(ErrorKind::InvalidParam, "userId is not a valid user ID").into())
    }

    /// The `userId` path parameter, which must name the requester.
    pub fn requester_as_path_user(&self) -> Result<&Requester> {
        let requester = self.requester()?;
        if self.path_user()? != requester.user_id {
            return Err(MatrixError::new(ErrorKind::Forbidden, "You cannot act for another user").into());
        }
        Ok(requester)
    }

    /// This server's own base URL, as clients should reach it.
    pub fn base_url(&self) -> String {
        self.config.public_baseurl.clone().unwrap_or_else(|| self.req.origin.clone())
    }
}
