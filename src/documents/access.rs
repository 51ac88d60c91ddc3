//! Who may read and change which collection, decided from the database at
//! the moment of each request (so removing a member or deleting a
//! collection takes effect on the very next one), and the search scope a
//! question gets from it.

use crate::index::Scope;
use crate::store::{CollectionRow, Store, StoreError};
use app::error::AppError;
use app::ports::Caller;
use app::wire::{CollectionAccess, MemberAccess, UserRole};
use std::collections::HashMap;

/// What one user may do with one collection, if anything.
pub fn access_of(row: &CollectionRow, user_id: &str, role: UserRole) -> Option<CollectionAccess> {
    if row.owner_id == user_id {
        return Some(CollectionAccess::Manage);
    }
    if row.private {
        // Nobody else, admins included, reads someone's own documents.
        return None;
    }
    if role == UserRole::Admin {
        return Some(CollectionAccess::Manage);
    }
    let everyone = row.everyone.filter(|_| role != UserRole::Guest);
    [row.member, everyone]
        .into_iter()
        .flatten()
        .map(|granted| match granted {
            MemberAccess::Read => CollectionAccess::Read,
            MemberAccess::Write => CollectionAccess::Write,
        })
        .max()
}

/// A collection a user can read, with what they may do with it.
#[derive(Debug, Clone)]
pub struct Reachable {
    pub row: CollectionRow,
    pub access: CollectionAccess,
}

/// What a question searches: the engine's [`Scope`], and each collection's
/// name for the citations.
#[derive(Debug, Clone, Default)]
pub struct SearchScope {
    pub scope: Scope,
    pub names: HashMap<String, String>,
    /// The swap clock when the scope was read: the builds answering then
    /// are the only ones a hit may come from.
    pub tick: i64,
}

#[derive(Clone)]
pub struct Access {
    store: Store,
}

impl Access {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Every collection the user can read now, with their access.
    pub async fn reachable(
        &self,
        user_id: &str,
        role: UserRole,
        counted: bool,
    ) -> Result<Vec<Reachable>, StoreError> {
        Ok(self
            .store
            .reachable_collections(
                user_id,
                role == UserRole::Guest,
                role == UserRole::Admin,
                counted,
            )
            .await?
            .into_iter()
            .filter_map(|row| {
                access_of(&row, user_id, role).map(|access| Reachable { row, access })
            })
            .collect())
    }

    /// One collection the caller can read (else `NotFound`), with their
    /// access, which must be at least `needed` (else `Forbidden`).
    pub async fn collection(
        &self,
        caller: &Caller,
        id: &str,
        needed: CollectionAccess,
    ) -> Result<Reachable, AppError> {
        let user = caller.user.as_ref().ok_or(AppError::NotFound)?;
        let row = self
            .store
            .collection_for(&user.0, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let access = access_of(&row, &user.0, caller.role).ok_or(AppError::NotFound)?;
        if access < needed {
            return Err(AppError::Forbidden(match needed {
                CollectionAccess::Manage => format!("Only the owner of \u{201c}{}\u{201d} or an administrator can change who may use it.", row.name),
                _ => format!("You can read \u{201c}{}\u{201d} but not change its documents.", row.name),
            }));
        }
        Ok(Reachable { row, access })
    }

    /// A conversation's chosen scope: 1 to 1000 collections, each one the
    /// user can read now (else `NotFound`, as for any id not theirs).
    pub async fn check_readable(&self, user_id: &str, ids: &[String]) -> Result<(), AppError> {
        if ids.is_empty() || ids.len() > 1000 {
            return Err(AppError::BadRequest(
                "Choose at least one collection to search.".into(),
            ));
        }
        let role = self
            .store
            .account(user_id)
            .await?
            .ok_or(AppError::NotFound)?
            .role;
        let reachable = self.reachable(user_id, role, false).await?;
        if ids
            .iter()
            .all(|id| reachable.iter().any(|r| r.row.id == *id))
        {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// The scope of a question by `user_id`: the collections they can read
    /// now (those of `chosen` only, if the conversation chose), the
    /// embedder that embeds the query, and the document builds that must
    /// not answer. `None` if nothing in scope has documents.
    pub async fn search_scope(
        &self,
        user_id: &str,
        chosen: Option<&[String]>,
        embedder: &str,
    ) -> Result<Option<SearchScope>, StoreError> {
        let Some(account) = self.store.account(user_id).await? else {
            return Ok(None);
        };
        let mut names = HashMap::new();
        let mut collections = Vec::new();
        for reachable in self.reachable(user_id, account.role, false).await? {
            if chosen.is_some_and(|chosen| !chosen.contains(&reachable.row.id)) {
                continue;
            }
            collections.push(reachable.row.id.clone());
            names.insert(reachable.row.id, reachable.row.name);
        }
        if !self.store.has_indexed_in(&collections).await? {
            return Ok(None);
        }
        let Some((tick, hidden_documents)) = self.store.hidden_documents(&collections).await?
        else {
            tracing::error!(
                "over {} document builds are hidden (stuck ingestions or removals?); \
                 answering without documents rather than showing them",
                crate::store::MAX_HIDDEN
            );
            return Ok(None);
        };
        Ok(Some(SearchScope {
            scope: Scope {
                collections,
                embedder: embedder.to_owned(),
                hidden_documents,
            },
            names,
            tick,
        }))
    }

    /// Keeps the hits of builds that answered when the scope was read. The
    /// index filter already hides the builds known then; this also drops a
    /// build that started writing vectors after that moment (or whose row
    /// is gone), so a search sees one state of every document: exactly one
    /// version of each, whatever swaps happen while it runs.
    pub async fn keep_answering(
        &self,
        scope: &SearchScope,
        hits: Vec<crate::index::Hit>,
    ) -> Result<Vec<crate::index::Hit>, StoreError> {
        let mut ids: Vec<String> = hits.iter().map(|h| h.payload.document_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let answering = self.store.answering_at(&ids, scope.tick).await?;
        Ok(hits
            .into_iter()
            .filter(|h| answering.contains(&h.payload.document_id))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(owner: &str, private: bool, everyone: Option<MemberAccess>) -> CollectionRow {
        CollectionRow {
            id: "c".into(),
            name: "C".into(),
            owner_id: owner.into(),
            owner_name: None,
            private,
            everyone,
            member: None,
            documents: 0,
        }
    }

    #[test]
    fn owners_manage_and_private_collections_stay_private() {
        let own = row("me", true, None);
        assert_eq!(
            access_of(&own, "me", UserRole::User),
            Some(CollectionAccess::Manage)
        );
        assert_eq!(access_of(&own, "admin", UserRole::Admin), None);
        assert_eq!(access_of(&own, "other", UserRole::User), None);
    }

    #[test]
    fn members_get_the_higher_of_their_grant_and_everyones() {
        let mut shared = row("owner", false, Some(MemberAccess::Read));
        assert_eq!(
            access_of(&shared, "u", UserRole::User),
            Some(CollectionAccess::Read)
        );
        assert_eq!(access_of(&shared, "g", UserRole::Guest), None);
        shared.member = Some(MemberAccess::Write);
        assert_eq!(
            access_of(&shared, "u", UserRole::User),
            Some(CollectionAccess::Write)
        );
        assert_eq!(
            access_of(&shared, "a", UserRole::Admin),
            Some(CollectionAccess::Manage)
        );
        shared.member = None;
        shared.everyone = None;
        assert_eq!(access_of(&shared, "u", UserRole::User), None);
    }
}
