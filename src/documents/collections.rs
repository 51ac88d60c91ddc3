//! The collection service: shared collections, their members, and re-index
//! builds. Access rules are in [`super::access`].

use super::access::{Access, Reachable};
use super::worker::Ingestion;
use app::error::AppError;
use app::ports::{Caller, CollectionService};
use app::wire::{CollectionAccess, CollectionList, CollectionView, MemberAccess, UserRole};
use std::sync::Arc;
use uuid::Uuid;

/// Shared collections one account may own (admins: more).
const MAX_SHARED_PER_USER: i64 = 100;
const MAX_SHARED_PER_ADMIN: i64 = 1000;
const MAX_NAME_CHARS: usize = 100;

pub struct CollectionServiceImpl {
    pub(super) inner: Arc<Ingestion>,
}

/// A collection name: trimmed, one line, 1 to [`MAX_NAME_CHARS`] characters.
fn collection_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(AppError::BadRequest(format!(
            "A collection name is one line of 1 to {MAX_NAME_CHARS} characters."
        )));
    }
    Ok(name.to_owned())
}

fn user_of(caller: &Caller) -> Result<&str, AppError> {
    caller
        .user
        .as_ref()
        .map(|u| u.0.as_str())
        .ok_or_else(|| AppError::Unauthorized("Sign in first.".into()))
}

impl CollectionServiceImpl {
    fn access(&self) -> Access {
        Access::new(self.inner.store.clone())
    }

    async fn view(&self, reachable: Reachable) -> Result<CollectionView, AppError> {
        let members = if reachable.access == CollectionAccess::Manage && !reachable.row.private {
            self.inner
                .store
                .collection_members(&reachable.row.id)
                .await?
        } else {
            Vec::new()
        };
        let row = reachable.row;
        Ok(CollectionView {
            id: row.id,
            name: row.name,
            private: row.private,
            everyone: row.everyone,
            access: reachable.access,
            owner: row.owner_name,
            documents: row.documents,
            members,
        })
    }

    /// The collection, which the caller must manage, as a shared one.
    async fn managed(&self, caller: &Caller, id: &str) -> Result<Reachable, AppError> {
        let reachable = self
            .access()
            .collection(caller, id, CollectionAccess::Manage)
            .await?;
        if reachable.row.private {
            return Err(AppError::BadRequest(
                "Your own collection can't be shared, renamed or deleted; make a shared one."
                    .into(),
            ));
        }
        Ok(reachable)
    }

    async fn may_create(&self, caller: &Caller) -> Result<bool, AppError> {
        Ok(match caller.role {
            UserRole::Admin => true,
            UserRole::Guest => false,
            UserRole::User => self.inner.store.can_share(user_of(caller)?).await?,
        })
    }

    /// The id of the account (not a guest) called `username`.
    async fn account(&self, username: &str) -> Result<Option<String>, AppError> {
        Ok(self
            .inner
            .store
            .account_id_by_username(username.trim())
            .await?)
    }

    async fn reload(&self, caller: &Caller, id: &str) -> Result<CollectionView, AppError> {
        let reachable = self
            .access()
            .collection(caller, id, CollectionAccess::Read)
            .await?;
        self.view(reachable).await
    }
}

/// Who may grant access: an admin, or the owner in a signed-in browser (an
/// owner's API key can't hand out their documents).
fn check_granting(caller: &Caller) -> Result<(), AppError> {
    if caller.via_api_key && caller.role != UserRole::Admin {
        return Err(AppError::Forbidden(
            "Members are managed from a signed-in browser (or with an administrator's key).".into(),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl CollectionService for CollectionServiceImpl {
    async fn list(&self, caller: &Caller) -> Result<CollectionList, AppError> {
        let Some(user) = caller.user.as_ref() else {
            return Ok(CollectionList {
                collections: Vec::new(),
                can_create: false,
            });
        };
        self.inner.store.ensure_private_collection(&user.0).await?;
        let mut collections = Vec::new();
        for reachable in self.access().reachable(&user.0, caller.role, true).await? {
            collections.push(self.view(reachable).await?);
        }
        Ok(CollectionList {
            collections,
            can_create: self.may_create(caller).await?,
        })
    }

    async fn create(
        &self,
        caller: &Caller,
        name: &str,
        everyone: Option<MemberAccess>,
    ) -> Result<CollectionView, AppError> {
        let user = user_of(caller)?;
        if !self.may_create(caller).await? {
            return Err(AppError::Forbidden(
                "Only administrators, and accounts they allow, can make shared collections.".into(),
            ));
        }
        check_granting(caller).or_else(|e| match everyone {
            None => Ok(()),
            Some(_) => Err(e),
        })?;
        let name = collection_name(name)?;
        let cap = match caller.role {
            UserRole::Admin => MAX_SHARED_PER_ADMIN,
            _ => MAX_SHARED_PER_USER,
        };
        if self.inner.store.shared_collections_owned(user).await? >= cap {
            return Err(AppError::Conflict(format!(
                "You own {cap} shared collections, the most one account can; delete one first."
            )));
        }
        let id = Uuid::new_v4().to_string();
        self.inner
            .store
            .create_collection(&id, &name, user, everyone)
            .await?;
        self.reload(caller, &id).await
    }

    async fn get(&self, caller: &Caller, id: &str) -> Result<CollectionView, AppError> {
        self.reload(caller, id).await
    }

    async fn update(
        &self,
        caller: &Caller,
        id: &str,
        name: Option<&str>,
        everyone: Option<Option<MemberAccess>>,
    ) -> Result<CollectionView, AppError> {
        let current = self.managed(caller, id).await?.row;
        if everyone.is_some() {
            check_granting(caller)?;
        }
        let name = match name {
            Some(name) => collection_name(name)?,
            None => current.name,
        };
        let everyone = everyone.unwrap_or(current.everyone);
        self.inner
            .store
            .update_collection(id, &name, everyone)
            .await?;
        self.reload(caller, id).await
    }

    async fn delete(&self, caller: &Caller, id: &str) -> Result<(), AppError> {
        self.managed(caller, id).await?;
        let documents = self.inner.store.delete_collection(id).await?;
        let inner = self.inner.clone();
        // Out of search at once (the collection is marked); the vectors,
        // files and rows go in the background, and a restart finishes it.
        tokio::spawn(async move {
            for document in documents {
                if let Err(e) = inner.remove_or_cancel(&document).await {
                    tracing::error!(error = %e, document_id = %document, "deleting a collection's document");
                }
            }
            if let Err(e) = inner.store.remove_emptied_collections().await {
                tracing::warn!(error = %e, "removing deleted collections");
            }
        });
        Ok(())
    }

    async fn set_member(
        &self,
        caller: &Caller,
        id: &str,
        username: &str,
        access: MemberAccess,
    ) -> Result<CollectionView, AppError> {
        let collection = self.managed(caller, id).await?.row;
        check_granting(caller)?;
        let member = self
            .account(username)
            .await?
            .ok_or_else(|| AppError::BadRequest(format!("There is no account {username:?}.")))?;
        if member == collection.owner_id {
            return Err(AppError::BadRequest(
                "The owner of a collection already has every right to it.".into(),
            ));
        }
        self.inner.store.set_member(id, &member, access).await?;
        self.reload(caller, id).await
    }

    async fn remove_member(
        &self,
        caller: &Caller,
        id: &str,
        username: &str,
    ) -> Result<CollectionView, AppError> {
        self.managed(caller, id).await?;
        check_granting(caller)?;
        let member = self.account(username).await?.ok_or(AppError::NotFound)?;
        if !self.inner.store.remove_member(id, &member).await? {
            return Err(AppError::NotFound);
        }
        self.reload(caller, id).await
    }

    async fn reindex(&self, caller: &Caller, id: &str, all: bool) -> Result<u32, AppError> {
        if caller.role != UserRole::Admin || caller.via_api_key {
            // Not even visible to others: same answer as an unknown id for
            // those who can't read it.
            self.access()
                .collection(caller, id, CollectionAccess::Read)
                .await?;
            return Err(AppError::Forbidden(
                "Only administrators (in a signed-in browser) can re-index a collection.".into(),
            ));
        }
        let row = self
            .access()
            .collection(caller, id, CollectionAccess::Read)
            .await?
            .row;
        Ok(self.inner.queue_rebuilds(&row.id, all).await?)
    }

    async fn allow_sharing(
        &self,
        caller: &Caller,
        user_id: &str,
        allowed: bool,
    ) -> Result<(), AppError> {
        if caller.role != UserRole::Admin || caller.via_api_key {
            return Err(AppError::Forbidden(
                "Only administrators can do this.".into(),
            ));
        }
        if !self.inner.store.set_can_share(user_id, allowed).await? {
            return Err(AppError::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_trimmed_line() {
        assert_eq!(collection_name("  HR handbook ").unwrap(), "HR handbook");
        assert!(collection_name("   ").is_err());
        assert!(collection_name("a\nb").is_err());
        assert!(collection_name(&"x".repeat(101)).is_err());
    }
}
