//! JSON documents in JetStream KV with optimistic concurrency: read a
//! document with its revision, write it back only if nobody wrote in
//! between. This is how replicas of one service share state without
//! losing updates.

use async_nats::jetstream::kv::{self, Operation, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a KV operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Someone else wrote first: read again and retry.
    #[error("revision conflict on {0}")]
    Conflict(String),
    /// The stored document is not what this code expects.
    #[error("corrupt document {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The decoding error.
        reason: String,
    },
    /// The broker failed.
    #[error("kv {key}: {reason}")]
    Broker {
        /// The key.
        key: String,
        /// The broker's error.
        reason: String,
    },
}

impl From<Error> for crate::HandleError {
    fn from(e: Error) -> Self {
        match e {
            Error::Corrupt { .. } => crate::HandleError::Permanent(e.to_string()),
            _ => crate::HandleError::Transient(e.to_string()),
        }
    }
}

/// A document and the revision it was read at (`0`: absent, and a write
/// must create it). A deleted key reads as absent with the revision of the
/// delete marker.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The document, if present.
    pub value: Option<T>,
    /// The revision to pass to `write`.
    pub revision: u64,
}

/// Reads a JSON document.
pub async fn read<T: DeserializeOwned>(store: &Store, key: &str) -> Result<Versioned<T>, Error> {
    let entry = store.entry(key).await.map_err(|e| Error::Broker {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    match entry {
        None => Ok(Versioned {
            value: None,
            revision: 0,
        }),
        Some(e) if e.operation != Operation::Put => Ok(Versioned {
            value: None,
            revision: e.revision,
        }),
        Some(e) => {
            let value = serde_json::from_slice(&e.value).map_err(|err| Error::Corrupt {
                key: key.to_string(),
                reason: err.to_string(),
            })?;
            Ok(Versioned {
                value: Some(value),
                revision: e.revision,
            })
        }
    }
}

/// Writes a JSON document if the key is still at `revision` (`0`: only if
/// absent). Returns the new revision.
pub async fn write<T: Serialize>(
    store: &Store,
    key: &str,
    value: &T,
    revision: u64,
) -> Result<u64, Error> {
    let bytes: bytes::Bytes = serde_json::to_vec(value)
        .map_err(|e| Error::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?
        .into();
    if revision == 0 {
        store.create(key, bytes).await.map_err(|e| match e.kind() {
            kv::CreateErrorKind::AlreadyExists => Error::Conflict(key.to_string()),
            _ => Error::Broker {
                key: key.to_string(),
                reason: e.to_string(),
            },
        })
    } else {
        store
            .update(key, bytes, revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::Conflict(key.to_string()),
                _ => Error::Broker {
                    key: key.to_string(),
                    reason: e.to_string(),
                },
            })
    }
}
