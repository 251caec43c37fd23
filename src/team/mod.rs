//! Users and API tokens, the room: the caller (`me`), listing, issuing and
//! revoking tokens. Tokens themselves are `auth`'s; users are records of
//! the standard `User` object.

pub mod api;
