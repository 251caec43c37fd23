//! `crm token`: API tokens made, listed and revoked from the server's
//! machine, so the first administrator (and a locked-out one) never needs
//! the API to get a token.

use crm::audit::Trail;
use crm::auth::Role;
use crm::db::Conn;
use crm::App;

use crate::TokenCommand;

/// Runs one `crm token` command.
pub async fn run(command: &TokenCommand, app: &App) -> anyhow::Result<()> {
    let mut conn = app.db.conn().await?;
    match command {
        TokenCommand::Create {
            user,
            role,
            expires,
            name,
        } => create(&mut conn, user, *role, *expires, name).await,
        TokenCommand::List => list(&mut conn).await,
        TokenCommand::Revoke { id } => revoke(&mut conn, *id).await,
    }
}

/// Prints the new token alone on stdout (for scripts to capture) and what
/// it is on stderr: the secret is shown only this once.
async fn create(
    conn: &mut Conn,
    user: &str,
    role: Role,
    expires: Option<chrono::Duration>,
    name: &str,
) -> anyhow::Result<()> {
    let expires_at = expires.map(|lifetime| chrono::Utc::now() + lifetime);
    let new = crm::auth::NewToken {
        user: crm::auth::UserRef::Email(user.to_owned()),
        role: Some(role),
        name: name.to_owned(),
        expires_at,
    };
    let issued = crm::auth::issue(conn, &Trail::cli("production"), &new).await?;
    println!("{}", issued.token);
    let until = match issued.info.expires_at {
        Some(at) => format!("until {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        None => "until revoked".to_owned(),
    };
    eprintln!(
        "token {} for {} as {}, valid {until}. It is shown only now: keep it safe.",
        issued.info.id, issued.info.user_email, issued.info.role
    );
    Ok(())
}

/// A table of every token, revoked ones marked, never a secret.
async fn list(conn: &mut Conn) -> anyhow::Result<()> {
    let format = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(|at| at.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{:<36}  {:<28}  {:<9}  {:<16}  {:<16}  {:<16}  name",
        "id", "user", "role", "created", "expires", "last used"
    );
    for token in crm::auth::list(conn, None).await? {
        let state = if token.revoked_at.is_some() { " (revoked)" } else { "" };
        println!(
            "{:<36}  {:<28}  {:<9}  {:<16}  {:<16}  {:<16}  {}{state}",
            token.id,
            token.user_email,
            token.role,
            format(Some(token.created_at)),
            format(token.expires_at),
            format(token.last_used_at),
            token.name
        );
    }
    Ok(())
}

/// Revokes a live token; an unknown or already revoked id is an error
/// pointing at `crm token list`.
async fn revoke(conn: &mut Conn, id: uuid::Uuid) -> anyhow::Result<()> {
    match crm::auth::revoke(conn, &Trail::cli("production"), id).await {
        Err(crm::CrmError::NotFound { .. }) => anyhow::bail!("no live token {id} (see crm token list)"),
        other => other?,
    };
    println!("revoked {id}; servers refuse it within 5 seconds");
    Ok(())
}
