//! Scopes and roles: [`RequireScope`] for routes, [`Grants`](crate::Grants) for handlers.
