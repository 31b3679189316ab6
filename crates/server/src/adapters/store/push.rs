//! Web Push in the store: the server's VAPID private key and the devices
//! subscribed for alerts.

use canary_shared::UnixMillis;
use canary_shared::audit::NotifyEvent;
use canary_shared::push::PushDevice;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError};

/// A subscription as stored: the device as the API shows it, and what
/// sending to it takes.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Its row.
    pub id: u64,
    /// Who subscribed it.
    pub user: String,
    /// The push service's URL for this device (a capability: never logged).
    pub endpoint: String,
    /// The browser's public key, base64url.
    pub p256dh: String,
    /// The browser's authentication secret, base64url (never logged).
    pub auth: String,
    /// What the device is ("Chrome on Android").
    pub label: String,
    /// What it is told about.
    pub events: Vec<NotifyEvent>,
    /// When it was subscribed.
    pub created_at: UnixMillis,
    /// When its push service last took an alert for it.
    pub last_delivered_at: Option<UnixMillis>,
    /// Why the last alert did not reach its push service.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for StoredSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSubscription")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("label", &self.label)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl StoredSubscription {
    /// The device as the API shows it: no endpoint, no keys.
    pub fn device(&self, service: String) -> PushDevice {
        PushDevice {
            id: self.id,
            user: self.user.clone(),
            label: self.label.clone(),
            service,
            events: self.events.clone(),
            created_at: self.created_at,
            last_delivered_at: self.last_delivered_at,
            last_error: self.last_error.clone(),
        }
    }
}

/// A new subscription, or new events for a known endpoint.
#[derive(Clone, Debug)]
pub struct NewSubscription<'a> {
    /// Who subscribes.
    pub user: &'a str,
    /// The push service's URL for the device.
    pub endpoint: &'a str,
    /// The endpoint it replaces, if the browser renewed its subscription.
    pub replaces: Option<&'a str>,
    /// The browser's public key.
    pub p256dh: &'a str,
    /// The browser's authentication secret.
    pub auth: &'a str,
    /// What the device is.
    pub label: &'a str,
    /// What it is told about.
    pub events: &'a [NotifyEvent],
}

const COLUMNS: &str = "id, user, endpoint, p256dh, auth, label, events, created_at, \
                       last_delivered_at, last_error";

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(StoredSubscription, String)> {
    Ok((
        StoredSubscription {
            id: row.get(0)?,
            user: row.get(1)?,
            endpoint: row.get(2)?,
            p256dh: row.get(3)?,
            auth: row.get(4)?,
            label: row.get(5)?,
            events: Vec::new(),
            created_at: UnixMillis(row.get(7)?),
            last_delivered_at: row.get::<_, Option<u64>>(8)?.map(UnixMillis),
            last_error: row.get(9)?,
        },
        row.get(6)?,
    ))
}

fn with_events(
    (mut subscription, events): (StoredSubscription, String),
) -> Result<StoredSubscription, StoreError> {
    subscription.events = serde_json::from_str(&events)?;
    Ok(subscription)
}

impl SqliteStore {
    /// The VAPID private key (32 bytes), made by `make` and saved the first
    /// time it is asked for.
    pub fn push_key(
        &self,
        now: UnixMillis,
        make: impl FnOnce() -> [u8; 32],
    ) -> Result<[u8; 32], StoreError> {
        let connection = self.connection();
        let stored: Option<Vec<u8>> = connection
            .query_row("SELECT private_key FROM push_key WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()?;
        if let Some(key) = stored.and_then(|key| <[u8; 32]>::try_from(key).ok()) {
            return Ok(key);
        }
        let key = make();
        // A key that is not 32 bytes was never written by a server; replacing
        // it orphans no subscription that could have worked.
        connection.execute(
            "INSERT INTO push_key (id, private_key, created_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET private_key = excluded.private_key",
            params![key.to_vec(), now.0],
        )?;
        Ok(key)
    }

    /// Saves a subscription (or, for a known endpoint, its new owner, keys,
    /// label and events) and gives it back as stored.
    pub fn save_push_subscription(
        &self,
        new: &NewSubscription<'_>,
        now: UnixMillis,
    ) -> Result<StoredSubscription, StoreError> {
        let events = serde_json::to_string(new.events)?;
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        if let Some(old) = new.replaces.filter(|old| *old != new.endpoint) {
            // The renewed subscription keeps the device's row (and its id).
            transaction.execute(
                "DELETE FROM push_subscriptions WHERE endpoint = ?1",
                params![new.endpoint],
            )?;
            transaction.execute(
                "UPDATE push_subscriptions SET endpoint = ?1 WHERE endpoint = ?2",
                params![new.endpoint, old],
            )?;
        }
        transaction.execute(
            "INSERT INTO push_subscriptions (user, endpoint, p256dh, auth, label, events, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (endpoint) DO UPDATE SET user = excluded.user, p256dh = excluded.p256dh,
               auth = excluded.auth, label = excluded.label, events = excluded.events,
               last_error = NULL",
            params![
                new.user,
                new.endpoint,
                new.p256dh,
                new.auth,
                new.label,
                events,
                now.0
            ],
        )?;
        let saved = transaction.query_row(
            &format!("SELECT {COLUMNS} FROM push_subscriptions WHERE endpoint = ?1"),
            params![new.endpoint],
            read_row,
        )?;
        transaction.commit()?;
        with_events(saved)
    }

    /// Every subscription (of `user` only, when given), newest first.
    pub fn push_subscriptions(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<StoredSubscription>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {COLUMNS} FROM push_subscriptions
             WHERE ?1 IS NULL OR user = ?1 ORDER BY id DESC"
        ))?;
        let rows = statement
            .query_map(params![user], read_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(with_events).collect()
    }

    /// The subscription with this id.
    pub fn push_subscription(&self, id: u64) -> Result<Option<StoredSubscription>, StoreError> {
        let row = self
            .connection()
            .query_row(
                &format!("SELECT {COLUMNS} FROM push_subscriptions WHERE id = ?1"),
                params![id],
                read_row,
            )
            .optional()?;
        row.map(with_events).transpose()
    }

    /// The subscription at this endpoint.
    pub fn push_subscription_at(
        &self,
        endpoint: &str,
    ) -> Result<Option<StoredSubscription>, StoreError> {
        let row = self
            .connection()
            .query_row(
                &format!("SELECT {COLUMNS} FROM push_subscriptions WHERE endpoint = ?1"),
                params![endpoint],
                read_row,
            )
            .optional()?;
        row.map(with_events).transpose()
    }

    /// Forgets a subscription; whether there was one.
    pub fn delete_push_subscription(&self, id: u64) -> Result<bool, StoreError> {
        let deleted = self
            .connection()
            .execute("DELETE FROM push_subscriptions WHERE id = ?1", params![id])?;
        Ok(deleted > 0)
    }

    /// Records how the last delivery to a device went: `Ok` at `now`, or why not.
    pub fn note_push_delivery(
        &self,
        id: u64,
        now: UnixMillis,
        outcome: Result<(), &str>,
    ) -> Result<(), StoreError> {
        let connection = self.connection();
        match outcome {
            Ok(()) => connection.execute(
                "UPDATE push_subscriptions SET last_delivered_at = ?2, last_error = NULL WHERE id = ?1",
                params![id, now.0],
            )?,
            Err(why) => connection.execute(
                "UPDATE push_subscriptions SET last_error = ?2 WHERE id = ?1",
                params![id, why],
            )?,
        };
        Ok(())
    }
}
