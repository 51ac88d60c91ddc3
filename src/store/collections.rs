//! Collections and their members. Who may read what is decided from these
//! rows at the moment of each request (see `documents::collections`).

use super::{now_ms, DbRow, Store, StoreError};
use app::wire::{MemberAccess, MemberView};

/// A collection as stored, with what one user is granted on it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRow {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub owner_name: Option<String>,
    pub private: bool,
    pub everyone: Option<MemberAccess>,
    /// The user's membership, if any.
    pub member: Option<MemberAccess>,
    /// Current documents in it.
    pub documents: u64,
}

/// Everything but the membership, which the queries add for one user;
/// the document count only when asked for (not on a question's path).
fn columns(counted: bool) -> String {
    let documents = if counted {
        "(SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id \
           AND d.superseded_at IS NULL AND d.building = 0 \
           AND d.status NOT IN ('failed', 'deleting'))"
    } else {
        "CAST(0 AS BIGINT)"
    };
    format!(
        "c.id, c.name, c.owner_id, u.username AS owner_name, c.private, c.everyone, \
         {documents} AS documents"
    )
}

impl Store {
    /// Makes the user's private collection if it doesn't exist yet (its id
    /// is the user's id).
    pub async fn ensure_private_collection(&self, user_id: &str) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "INSERT INTO collections (id, name, owner_id, private, created_at) \
             VALUES ($1, 'My documents', $1, 1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(now_ms())
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The collections a user may reach: their own, those they are a member
    /// of, and, unless `guest`, those shared with everyone; `admin` adds
    /// every shared collection. Deleted ones are gone at once.
    pub async fn reachable_collections(
        &self,
        user_id: &str,
        guest: bool,
        admin: bool,
        counted: bool,
    ) -> Result<Vec<CollectionRow>, StoreError> {
        let columns = columns(counted);
        let everyone = if guest {
            ""
        } else {
            " OR c.everyone IS NOT NULL"
        };
        let shared = if admin { " OR c.private = 0" } else { "" };
        on_db!(self, db => sqlx::query(&format!(
            "SELECT {columns}, m.access AS member FROM collections c \
             JOIN users u ON u.id = c.owner_id \
             LEFT JOIN collection_members m ON m.collection_id = c.id AND m.user_id = $1 \
             WHERE c.deleted_at IS NULL \
               AND (c.owner_id = $1 OR m.user_id IS NOT NULL{everyone}{shared}) \
             ORDER BY c.private DESC, lower(c.name), c.id LIMIT 1000"
        ))
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(collection_from_row)
        .collect())
    }

    /// One collection (not deleted) with `user_id`'s membership.
    pub async fn collection_for(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<CollectionRow>, StoreError> {
        let columns = columns(true);
        on_db!(self, db => sqlx::query(&format!(
            "SELECT {columns}, m.access AS member FROM collections c \
             JOIN users u ON u.id = c.owner_id \
             LEFT JOIN collection_members m ON m.collection_id = c.id AND m.user_id = $1 \
             WHERE c.id = $2 AND c.deleted_at IS NULL"
        ))
        .bind(user_id)
        .bind(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(collection_from_row)
        .transpose())
    }

    pub async fn create_collection(
        &self,
        id: &str,
        name: &str,
        owner_id: &str,
        everyone: Option<MemberAccess>,
    ) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "INSERT INTO collections (id, name, owner_id, private, everyone, created_at) \
             VALUES ($1, $2, $3, 0, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(owner_id)
        .bind(everyone.map(MemberAccess::as_str))
        .bind(now_ms())
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Shared collections a user owns (to cap how many one makes).
    pub async fn shared_collections_owned(&self, user_id: &str) -> Result<i64, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT COUNT(*) FROM collections WHERE owner_id = $1 AND private = 0 AND deleted_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(db)
        .await?))
    }

    pub async fn update_collection(
        &self,
        id: &str,
        name: &str,
        everyone: Option<MemberAccess>,
    ) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "UPDATE collections SET name = $1, everyone = $2 WHERE id = $3 AND deleted_at IS NULL",
        )
        .bind(name)
        .bind(everyone.map(MemberAccess::as_str))
        .bind(id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Deletes a shared collection: it leaves every search at once, its
    /// members go, and its documents are marked for deletion (their ids are
    /// returned, for the vectors to be removed before the rows).
    pub async fn delete_collection(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        on_db!(self, db => {
            let mut tx = db.begin().await?;
            sqlx::query("UPDATE collections SET deleted_at = $1 WHERE id = $2 AND private = 0")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM collection_members WHERE collection_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE documents SET status = 'deleting', updated_at = $1 \
                 WHERE collection_id = $2 RETURNING id",
            )
            .bind(now)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM response_cache WHERE key IN \
                 (SELECT key FROM response_cache_documents WHERE document_id IN \
                   (SELECT id FROM documents WHERE collection_id = $1))",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(ids)
        })
    }

    /// Removes deleted collections none of whose documents are left.
    pub async fn remove_emptied_collections(&self) -> Result<u64, StoreError> {
        Ok(on_db!(self, db => sqlx::query(
            "DELETE FROM collections WHERE deleted_at IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.collection_id = collections.id)",
        )
        .execute(db)
        .await?
        .rows_affected()))
    }

    pub async fn collection_members(&self, id: &str) -> Result<Vec<MemberView>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT u.username, m.access FROM collection_members m JOIN users u ON u.id = m.user_id \
             WHERE m.collection_id = $1 AND u.username IS NOT NULL ORDER BY lower(u.username)",
        )
        .bind(id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            let access = r.text("access")?;
            Ok(MemberView {
                username: r.text("username")?,
                access: MemberAccess::parse(&access)
                    .ok_or_else(|| StoreError::Corrupt(format!("member access {access:?}")))?,
            })
        })
        .collect())
    }

    /// Adds a member or changes their access.
    pub async fn set_member(
        &self,
        id: &str,
        user_id: &str,
        access: MemberAccess,
    ) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "INSERT INTO collection_members (collection_id, user_id, access) VALUES ($1, $2, $3) \
             ON CONFLICT (collection_id, user_id) DO UPDATE SET access = excluded.access",
        )
        .bind(id)
        .bind(user_id)
        .bind(access.as_str())
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// False if the user wasn't a member.
    pub async fn remove_member(&self, id: &str, user_id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "DELETE FROM collection_members WHERE collection_id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// The id of the account (not guest) with this username, any case.
    pub async fn account_id_by_username(
        &self,
        username: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT id FROM users WHERE lower(username) = lower($1)",
        )
        .bind(username)
        .fetch_optional(db)
        .await?))
    }

    /// Whether the admin allowed this user to make shared collections.
    pub async fn can_share(&self, user_id: &str) -> Result<bool, StoreError> {
        let flag: Option<i64> = on_db!(self, db => sqlx::query_scalar(
            "SELECT can_share FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(db)
        .await?);
        Ok(flag.unwrap_or(0) != 0)
    }

    pub async fn set_can_share(&self, user_id: &str, allowed: bool) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE users SET can_share = $1 WHERE id = $2 AND username IS NOT NULL",
        )
        .bind(i64::from(allowed))
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }
}

fn collection_from_row(r: &impl DbRow) -> Result<CollectionRow, StoreError> {
    let access = |column: &str| -> Result<Option<MemberAccess>, StoreError> {
        r.opt_text(column)?
            .map(|a| {
                MemberAccess::parse(&a).ok_or_else(|| StoreError::Corrupt(format!("access {a:?}")))
            })
            .transpose()
    };
    Ok(CollectionRow {
        id: r.text("id")?,
        name: r.text("name")?,
        owner_id: r.text("owner_id")?,
        owner_name: r.opt_text("owner_name")?,
        private: r.int("private")? != 0,
        everyone: access("everyone")?,
        member: access("member")?,
        documents: u64::try_from(r.int("documents")?).unwrap_or(0),
    })
}
