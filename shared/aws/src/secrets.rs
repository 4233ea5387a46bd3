//! Secrets Manager adapter for [`SecretStore`]: one secret per source or target, named
//! `{prefix}{source|target}/{id}`, cached per container for a bounded time. The IAM actions
//! these calls need are listed in `permissions.rs` (a test checks).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;
use notify_domain::{SecretBundle, SecretError, SecretOwner, SecretStore};

pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, SecretBundle)>>,
}

impl SecretsManagerStore {
    /// `prefix` must end in `/` (for example `notify/`); IAM limits the functions to it.
    pub fn new(client: Client, prefix: impl Into<String>, cache_ttl: Duration) -> Self {
        SecretsManagerStore {
            client,
            prefix: prefix.into(),
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn secret_name(&self, owner: SecretOwner<'_>) -> String {
        match owner {
            SecretOwner::Source(id) => format!("{}source/{id}", self.prefix),
            SecretOwner::Target(id) => format!("{}target/{id}", self.prefix),
        }
    }

    fn cached(&self, name: &str) -> Option<SecretBundle> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(name)
            .filter(|(at, _)| at.elapsed() < self.cache_ttl)
            .map(|(_, bundle)| bundle.clone())
    }

    fn remember(&self, name: &str, bundle: Option<&SecretBundle>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match bundle {
            Some(b) => {
                cache.insert(name.to_string(), (Instant::now(), b.clone()));
            }
            None => {
                cache.remove(name);
            }
        }
    }
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> SecretError {
    SecretError::Unavailable(DisplayErrorContext(err).to_string())
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn put_secrets(
        &self,
        user: &str,
        owner: SecretOwner<'_>,
        bundle: &SecretBundle,
    ) -> Result<(), SecretError> {
        let name = self.secret_name(owner);
        let value = bundle.to_storage_json();
        let updated = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&value)
            .send()
            .await;
        match updated {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(&name)
                    .secret_string(&value)
                    .description("Secret fields of one notify-service source or target")
                    .tags(Tag::builder().key("notify:user").value(user).build())
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            Err(err) => return Err(unavailable(err)),
        }
        self.remember(&name, Some(bundle));
        Ok(())
    }

    async fn get_secrets(&self, owner: SecretOwner<'_>) -> Result<SecretBundle, SecretError> {
        let name = self.secret_name(owner);
        if let Some(bundle) = self.cached(&name) {
            return Ok(bundle);
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .map_err(|err| {
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception())
                {
                    SecretError::NotFound(name.clone())
                } else {
                    unavailable(err)
                }
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| SecretError::Corrupt(name.clone()))?;
        let bundle = SecretBundle::from_storage_json(text)
            .map_err(|_| SecretError::Corrupt(name.clone()))?;
        self.remember(&name, Some(&bundle));
        Ok(bundle)
    }

    async fn delete_secrets(&self, owner: SecretOwner<'_>) -> Result<(), SecretError> {
        let name = self.secret_name(owner);
        self.remember(&name, None);
        match self
            .client
            .delete_secret()
            .secret_id(&name)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }
}
