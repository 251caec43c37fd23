//! Rate limits: per verified API token, and per client address for failed
//! authentications.
//!
//! A request counts against a token only after its secret is verified, so
//! knowing a token's id (every role can list ids) does not let anyone spend
//! its allowance and lock its owner out. Requests whose token is missing,
//! unknown or wrong count against the address they came from instead, with
//! an allowance of their own. Both limiters keep their memory bounded: keys
//! whose allowance is full again are dropped, and past a fixed number of
//! keys the newcomers share one allowance.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use super::HttpError;
use crate::config::Config;
use crate::error::CrmError;

/// Tokens tracked before newcomers share one allowance; only verified
/// tokens are tracked, so only a deployment with this many busy tokens
/// comes near it.
const TRACKED_TOKENS: usize = 100_000;
/// Client addresses tracked before newcomers share one allowance (a few
/// megabytes at most).
const TRACKED_ADDRESSES: usize = 65_536;
/// How often keys whose allowance is full again are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often they are dropped while a limiter is at its bound.
const SWEEP_WHEN_FULL_EVERY: Duration = Duration::from_secs(1);

/// The allowances of verified tokens and of client addresses that fail to
/// authenticate.
#[derive(Debug)]
pub struct RateLimits {
    tokens: Option<Keyed<Uuid>>,
    failures: Option<Keyed<IpAddr>>,
}

impl RateLimits {
    /// `rate_limit` requests a second per token (bursts of twice that) and
    /// `auth_failure_limit` failed authentications a minute per address
    /// (all at once, or spread out); 0 turns a limit off.
    pub fn new(config: &Config) -> Self {
        let tokens = NonZeroU32::new(config.rate_limit).map(|per_second| {
            let quota = Quota::per_second(per_second).allow_burst(per_second.saturating_add(per_second.get()));
            Keyed::new(quota, TRACKED_TOKENS, Uuid::nil())
        });
        let failures = NonZeroU32::new(config.auth_failure_limit).map(|per_minute| {
            Keyed::new(
                Quota::per_minute(per_minute),
                TRACKED_ADDRESSES,
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            )
        });
        RateLimits { tokens, failures }
    }

    /// Spends one request of a verified token's allowance.
    pub fn check_token(&self, token: Uuid) -> Result<(), Refused> {
        let Some(tokens) = &self.tokens else { return Ok(()) };
        tokens.check(token).map_err(|wait| Refused {
            limit: Limit::Token,
            wait,
        })
    }

    /// Records a failed authentication from `client`: refused once the
    /// address has failed too often (it then gets 429 instead of 401).
    pub fn check_failure(&self, client: Option<IpAddr>) -> Result<(), Refused> {
        let (Some(failures), Some(client)) = (&self.failures, client) else {
            return Ok(());
        };
        failures.check(network(client)).map_err(|wait| Refused {
            limit: Limit::Address,
            wait,
        })
    }

    /// How many keys the limiters hold: `(tokens, addresses)`.
    pub fn tracked(&self) -> (usize, usize) {
        let tokens = self.tokens.as_ref().map_or(0, |t| t.limiter.len());
        let failures = self.failures.as_ref().map_or(0, |f| f.limiter.len());
        (tokens, failures)
    }
}

/// The address a request came from, when the server passes it on as
/// `ConnectInfo` (`crm serve` does); without it, failed authentications
/// are not limited.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        Ok(ClientAddress(address))
    }
}

/// The key of a client address: IPv4 addresses one by one, IPv6 by their
/// /64 network, which one host usually holds whole.
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A keyed limiter whose memory stays bounded.
#[derive(Debug)]
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    /// Keys tracked at most; past it, new keys share `overflow`'s allowance.
    capacity: usize,
    overflow: K,
    last_sweep: Mutex<Instant>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota, capacity: usize, overflow: K) -> Self {
        Keyed {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            capacity,
            overflow,
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Spends one unit of `key`'s allowance, or says how long until there is one.
    fn check(&self, key: K) -> Result<(), Duration> {
        let full = self.limiter.len() >= self.capacity;
        self.sweep(full);
        let key = if full && self.limiter.len() >= self.capacity {
            self.overflow.clone()
        } else {
            key
        };
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Drops the keys whose allowance is whole again (they behave as new
    /// ones), now and then; more often while the limiter is full.
    fn sweep(&self, full: bool) {
        let every = if full { SWEEP_WHEN_FULL_EVERY } else { SWEEP_EVERY };
        // Another request sweeping (or a poisoned lock): skip this time.
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if last.elapsed() < every {
            return;
        }
        *last = Instant::now();
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A request a rate limit refuses: which limit, and how long until it
/// would pass.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    limit: Limit,
    wait: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Token,
    Address,
}

impl From<Refused> for HttpError {
    /// 429 with `Retry-After` and a `RATE_LIMITED` error.
    fn from(refused: Refused) -> Self {
        let wait = refused.wait.as_secs() + u64::from(refused.wait.subsec_nanos() > 0);
        let wait = wait.max(1);
        let message = match refused.limit {
            Limit::Token => format!("too many requests with this API token; retry in {wait} s"),
            Limit::Address => {
                format!("too many requests with a missing or invalid API token from this address; retry in {wait} s")
            }
        };
        HttpError::from(CrmError::RateLimited(message)).with_header(header::RETRY_AFTER, HeaderValue::from(wait))
    }
}
