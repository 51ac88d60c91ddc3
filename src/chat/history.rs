//! The conversation list's tools: search over titles and messages, rename,
//! pin, Markdown export, and read-only links to a conversation as it was
//! when shared. Every call checks the owner; another user's conversation
//! is `NotFound`.

use super::export::to_markdown;
use crate::store::{ShareMade, Store};
use app::error::AppError;
use app::ports::{HistoryService, UserId};
use app::wire::{search_terms, ConversationView, SearchHit, ShareView, MATCH_END, MATCH_START};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// A search lists at most this many conversations.
const MAX_HITS: usize = 50;
/// A shared snapshot is at most this large (serialized).
const MAX_SNAPSHOT_BYTES: usize = 1 << 20;

pub struct HistoryServiceImpl {
    store: Store,
}

impl HistoryServiceImpl {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn owned_view(&self, user: &UserId, id: &str) -> Result<ConversationView, AppError> {
        self.store
            .owned_conversation(&user.0, id)
            .await?
            .ok_or(AppError::NotFound)
    }
}

/// `title` with each term's first occurrence marked, if it holds them all.
fn title_match(title: &str, terms: &[String]) -> Option<String> {
    let lower = title.to_lowercase();
    // Lower-casing can change lengths; mark only where offsets agree.
    let comparable = lower.len() == title.len();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for term in terms {
        let at = lower.find(term.as_str())?;
        if comparable && title.is_char_boundary(at) && title.is_char_boundary(at + term.len()) {
            spans.push((at, at + term.len()));
        }
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(title.len() + 4 * spans.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            continue;
        }
        out.push_str(&title[at..start]);
        out.push(MATCH_START);
        out.push_str(&title[start..end]);
        out.push(MATCH_END);
        at = end;
    }
    out.push_str(&title[at..]);
    Some(out)
}

/// A title as given: trimmed, not empty, not too long, one line.
pub fn parse_title(title: &str) -> Result<String, AppError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(AppError::BadRequest("A title can't be empty.".into()));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(AppError::BadRequest(format!(
            "A title can be at most {MAX_TITLE_CHARS} characters."
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "A title is one line of text, without control characters.".into(),
        ));
    }
    Ok(title.to_owned())
}

/// What a shared link shows: the branch shown, with the passages each
/// answer cites, and nothing else of the owner's (no votes, no versions,
/// no passages that weren't cited).
fn snapshot(mut view: ConversationView) -> ConversationView {
    // Which collections it searches is the owner's business (the ids name
    // their account).
    view.scope = None;
    for message in &mut view.messages {
        message.rating = None;
        message.versions = None;
        message.sources.retain(|s| s.cited);
    }
    view
}

#[async_trait::async_trait]
impl HistoryService for HistoryServiceImpl {
    async fn search(&self, user: &UserId, query: &str) -> Result<Vec<SearchHit>, AppError> {
        let terms = search_terms(query)?;
        let mut hits: Vec<SearchHit> = self
            .store
            .list_conversations(&user.0)
            .await?
            .into_iter()
            .filter_map(|c| {
                Some(SearchHit {
                    snippet: title_match(&c.title, &terms)?,
                    conversation_id: c.id,
                    title: c.title,
                    updated_at_ms: c.updated_at_ms,
                })
            })
            .collect();
        for hit in self.store.search_messages(&user.0, &terms).await? {
            if !hits
                .iter()
                .any(|h| h.conversation_id == hit.conversation_id)
            {
                hits.push(hit);
            }
        }
        hits.truncate(MAX_HITS);
        Ok(hits)
    }

    async fn rename(&self, user: &UserId, id: &str, title: &str) -> Result<(), AppError> {
        let title = parse_title(title)?;
        match self.store.rename_conversation(&user.0, id, &title).await? {
            true => Ok(()),
            false => Err(AppError::NotFound),
        }
    }

    async fn pin(&self, user: &UserId, id: &str, pinned: bool) -> Result<(), AppError> {
        match self.store.pin_conversation(&user.0, id, pinned).await? {
            true => Ok(()),
            false => Err(AppError::NotFound),
        }
    }

    async fn export_markdown(&self, user: &UserId, id: &str) -> Result<(String, String), AppError> {
        let view = self.owned_view(user, id).await?;
        let name: String = view
            .title
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let name = if name.is_empty() {
            "conversation".into()
        } else {
            name
        };
        Ok((format!("{name}.md"), to_markdown(&view)))
    }

    async fn share(&self, user: &UserId, id: &str) -> Result<ShareView, AppError> {
        let view = snapshot(self.owned_view(user, id).await?);
        let json = serde_json::to_string(&view).map_err(|e| {
            tracing::error!(error = %e, "serializing a shared conversation");
            AppError::Internal
        })?;
        if json.len() > MAX_SNAPSHOT_BYTES {
            return Err(AppError::TooLarge(
                "This conversation is too long to share (over 1 MiB); export it instead.".into(),
            ));
        }
        match self.store.create_share(&user.0, id, &json).await? {
            ShareMade::Made(share) => Ok(share),
            ShareMade::NotFound => Err(AppError::NotFound),
            ShareMade::TooMany => Err(AppError::BadRequest(format!(
                "You have {} shared links; revoke one first.",
                crate::store::MAX_SHARES_PER_USER
            ))),
        }
    }

    async fn list_shares(&self, user: &UserId) -> Result<Vec<ShareView>, AppError> {
        Ok(self.store.list_shares(&user.0).await?)
    }

    async fn revoke_share(&self, user: &UserId, share_id: &str) -> Result<(), AppError> {
        match self.store.revoke_share(&user.0, share_id).await? {
            true => Ok(()),
            false => Err(AppError::NotFound),
        }
    }

    async fn shared(&self, share_id: &str) -> Result<ConversationView, AppError> {
        let well_formed = share_id.len() == 32 && share_id.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(AppError::NotFound);
        }
        let json = self
            .store
            .shared_snapshot(share_id)
            .await?
            .ok_or(AppError::NotFound)?;
        serde_json::from_str(&json).map_err(|e| {
            tracing::error!(error = %e, "reading a shared conversation");
            AppError::Internal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_match_every_word_and_mark_them() {
        let terms = vec!["bread".to_string(), "oven".to_string()];
        assert_eq!(
            title_match("Oven bread", &terms).unwrap(),
            format!("{MATCH_START}Oven{MATCH_END} {MATCH_START}bread{MATCH_END}")
        );
        assert!(title_match("Bread only", &terms).is_none());
        // Lower-casing that changes lengths matches without marks.
        assert_eq!(title_match("İ oven bread", &terms).unwrap(), "İ oven bread");
    }

    #[test]
    fn titles_are_one_line_of_bounded_length() {
        assert_eq!(parse_title("  Bread  ").unwrap(), "Bread");
        assert!(parse_title(" ").is_err());
        assert!(parse_title("a\nb").is_err());
        assert!(parse_title(&"x".repeat(201)).is_err());
    }
}
