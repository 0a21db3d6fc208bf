//! The durable store as the gateway holds it: every answer feeds a
//! [`Health`], so the moment PostgreSQL (or a SQLite file on a failed disk)
//! stops answering, and the moment it answers again, are each audited once,
//! whichever page or command met it first.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    EnrolmentStore, Enrolments, Passkey, PasskeyUse, SmsNumber, StorageError, TokenInfo,
    TokenRecord, TotpDevice, UserRef, Verify,
};
use crate::state::health::{Backend, Health};

/// An [`EnrolmentStore`] whose availability is watched.
#[derive(Debug)]
pub struct MonitoredStore {
    inner: Arc<dyn EnrolmentStore>,
    /// Up or down, and who is told.
    pub health: Health,
}

impl MonitoredStore {
    /// Watch `inner`.
    pub fn new(inner: Arc<dyn EnrolmentStore>) -> MonitoredStore {
        MonitoredStore {
            inner,
            health: Health::default(),
        }
    }

    fn seen<T>(&self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        // A refused input (a bad number, a token of someone else) is an
        // answer from a working store; only "cannot reach it" is an outage.
        match &r {
            Ok(_) | Err(StorageError::Unavailable(_)) => self.health.observe(Backend::Storage, &r),
            Err(_) => {}
        }
        r
    }
}

#[async_trait]
impl EnrolmentStore for MonitoredStore {
    async fn ping(&self) -> Result<(), StorageError> {
        self.seen(self.inner.ping().await)
    }
    async fn sms_numbers(&self, who: &UserRef) -> Result<Vec<SmsNumber>, StorageError> {
        self.seen(self.inner.sms_numbers(who).await)
    }
    async fn set_sms_number(
        &self,
        who: &UserRef,
        position: u8,
        e164: &str,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        self.seen(self.inner.set_sms_number(who, position, e164, now_ms).await)
    }
    async fn remove_sms_number(&self, who: &UserRef, position: u8) -> Result<bool, StorageError> {
        self.seen(self.inner.remove_sms_number(who, position).await)
    }
    async fn totp_devices(&self, who: &UserRef) -> Result<Vec<TotpDevice>, StorageError> {
        self.seen(self.inner.totp_devices(who).await)
    }
    async fn add_totp_device(
        &self,
        who: &UserRef,
        description: &str,
        secret: &[u8],
        now_ms: u64,
    ) -> Result<i64, StorageError> {
        self.seen(
            self.inner
                .add_totp_device(who, description, secret, now_ms)
                .await,
        )
    }
    async fn remove_totp_device(&self, who: &UserRef, id: i64) -> Result<bool, StorageError> {
        self.seen(self.inner.remove_totp_device(who, id).await)
    }
    async fn verify_totp(
        &self,
        who: &UserRef,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError> {
        self.seen(self.inner.verify_totp(who, code, now_secs).await)
    }
    async fn import_tokens(
        &self,
        tokens: Vec<TokenRecord>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        self.seen(self.inner.import_tokens(tokens, now_ms).await)
    }
    async fn assign_token(
        &self,
        serial: &str,
        who: &UserRef,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        self.seen(self.inner.assign_token(serial, who, now_ms).await)
    }
    async fn unassign_token(&self, serial: &str) -> Result<Option<UserRef>, StorageError> {
        self.seen(self.inner.unassign_token(serial).await)
    }
    async fn tokens_of(&self, who: &UserRef) -> Result<Vec<TokenInfo>, StorageError> {
        self.seen(self.inner.tokens_of(who).await)
    }
    async fn verify_token(
        &self,
        who: &UserRef,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError> {
        self.seen(self.inner.verify_token(who, code, now_secs).await)
    }
    async fn resync_token(
        &self,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Option<u64>, StorageError> {
        self.seen(self.inner.resync_token(serial, code1, code2).await)
    }
    async fn passkeys(&self, who: &UserRef) -> Result<Vec<Passkey>, StorageError> {
        self.seen(self.inner.passkeys(who).await)
    }
    async fn add_passkey(
        &self,
        who: &UserRef,
        description: &str,
        credential_id: &str,
        key: &str,
        counter: u32,
        now_ms: u64,
    ) -> Result<i64, StorageError> {
        self.seen(
            self.inner
                .add_passkey(who, description, credential_id, key, counter, now_ms)
                .await,
        )
    }
    async fn remove_passkey(&self, who: &UserRef, id: i64) -> Result<bool, StorageError> {
        self.seen(self.inner.remove_passkey(who, id).await)
    }
    async fn use_passkey(
        &self,
        who: &UserRef,
        id: i64,
        counter: u32,
        key: &str,
        now_ms: u64,
    ) -> Result<PasskeyUse, StorageError> {
        self.seen(self.inner.use_passkey(who, id, counter, key, now_ms).await)
    }
    async fn enrolments(&self, who: &UserRef) -> Result<Enrolments, StorageError> {
        self.seen(self.inner.enrolments(who).await)
    }
    async fn reset_user(&self, who: &UserRef) -> Result<Enrolments, StorageError> {
        self.seen(self.inner.reset_user(who).await)
    }
}
