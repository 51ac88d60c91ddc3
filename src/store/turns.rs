//! A chat turn's rows: the question and its answer from the moment it
//! starts (a new question, a regenerated answer or an edited question, each
//! a new branch of the conversation's tree), the answer stored as it grows,
//! Stop requests that reach whichever replica generates, and how it ended.

use super::conversations::{message_from_row, parse_role, sources_json, MESSAGE_COLUMNS};
use super::tree::{Node, Tree};
use super::{db_int, now_ms, DbRow, Store, StoreError};
use app::wire::{MessageStatus, MessageView, Role, Source};
use uuid::Uuid;

/// A message to put into the prompt.
#[derive(Debug, Clone)]
pub struct HistoryMessage {
    pub role: Role,
    pub content: String,
}

/// What a finished (or failed, or stopped) answer leaves behind.
#[derive(Debug, Clone)]
pub struct AnswerRecord {
    /// The model that answered (a fallback may have taken over).
    pub model: String,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub ttft_ms: Option<u64>,
    pub total_ms: u64,
    pub sources: Vec<Source>,
    /// What the reader was told about the answer (see `ChatEvent::Notice`).
    pub notice: Option<String>,
    /// The standalone query a follow-up was searched as.
    pub searched_for: Option<String>,
}

/// Where a turn starts.
#[derive(Debug, Clone, Copy)]
pub enum TurnStart<'a> {
    /// A new question after the branch shown (in a new conversation when
    /// `conversation_id` is `None`).
    Ask {
        conversation_id: Option<&'a str>,
        /// The message the question follows: the last one the asker's tab
        /// shows (another tab may have switched the branch since). `None`:
        /// the end of the branch the conversation shows.
        after: Option<&'a str>,
        text: &'a str,
    },
    /// Another version of an answer, to the same question.
    Regenerate { answer_id: &'a str },
    /// A new version of a question, answered afresh; the old one keeps its
    /// branch.
    Edit { question_id: &'a str, text: &'a str },
    /// A question through the OpenAI-compatible API, with API key `key_id`:
    /// always a conversation of its own (the request carries its history),
    /// left out of the browser's list.
    Api { key_id: &'a str, text: &'a str },
}

/// The rows created for one chat turn.
#[derive(Debug, Clone)]
pub struct NewTurn {
    pub conversation_id: String,
    pub title: String,
    pub user_message_id: String,
    pub assistant_message_id: String,
    /// The question answered (a regenerated answer's is the stored one).
    pub question: String,
    /// The messages before the question on its branch, oldest first.
    pub history: Vec<HistoryMessage>,
    /// Another version of an answer that exists.
    pub regenerated: bool,
}

/// Whether a turn could begin.
#[derive(Debug)]
pub enum TurnBegun {
    Started(NewTurn),
    /// The conversation or message is not the user's (or not of the kind
    /// the start needs).
    NotFound,
    /// An answer in this conversation is still being generated.
    Busy,
    /// The user already has this many answers being generated.
    TooMany(usize),
}

/// Inserts one [`NewRow`] of a conversation, at `seq`, in transaction `tx`
/// (either backend's).
macro_rules! insert_message {
    ($tx:ident, $conversation:expr, $seq:expr, $now:expr, $row:expr) => {{
        let (id, role, content, status, model, parent): NewRow<'_> = $row;
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, role, content, status, model, \
               created_at, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind($conversation)
        .bind($seq)
        .bind(role)
        .bind(content)
        .bind(status)
        .bind(model)
        .bind($now)
        .bind(parent)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// How many of the user's answers are generating, counted in transaction
/// `tx` after locking the user's row (Postgres), so replicas count one at a
/// time: a separate statement, whose snapshot sees what the turn before
/// committed.
macro_rules! count_generating {
    ($tx:ident, $user_id:expr, $user_lock:expr) => {{
        sqlx::query(&format!(
            "SELECT u.id FROM users u WHERE u.id = $1{}",
            $user_lock
        ))
        .bind($user_id)
        .execute(&mut *$tx)
        .await?;
        let generating: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.user_id = $1 AND m.status = 'streaming'",
        )
        .bind($user_id)
        .fetch_one(&mut *$tx)
        .await?;
        generating
    }};
}

/// One message as a turn needs it: its place and text.
struct Row {
    node: Node,
    role: String,
    content: String,
    streaming: bool,
}

fn turn_row(r: &impl DbRow) -> Result<Row, StoreError> {
    Ok(Row {
        node: Node {
            id: r.text("id")?,
            parent: r.opt_text("parent_id")?,
            seq: r.int("seq")?,
        },
        role: r.text("role")?,
        content: r.text("content")?,
        streaming: r.text("status")? == "streaming",
    })
}

impl TurnStart<'_> {
    /// The conversation or message the turn starts from (`None`: a new
    /// conversation), and the role that message must have.
    fn target(&self) -> (Option<&str>, &'static str) {
        match *self {
            TurnStart::Ask {
                conversation_id, ..
            } => (conversation_id, ""),
            TurnStart::Regenerate { answer_id } => (Some(answer_id), "assistant"),
            TurnStart::Edit { question_id, .. } => (Some(question_id), "user"),
            TurnStart::Api { .. } => (None, ""),
        }
    }
}

impl Store {
    /// Stores the question (unless regenerating) and an empty "streaming"
    /// answer in one transaction, as a new branch that the conversation
    /// then shows. A new conversation is called `new_title`. At most
    /// `max_generating` answers of one user generate at once, and one per
    /// conversation.
    pub async fn begin_turn(
        &self,
        user_id: &str,
        start: TurnStart<'_>,
        model: &str,
        new_title: &str,
        max_generating: usize,
    ) -> Result<TurnBegun, StoreError> {
        // Locks the conversation (Postgres) so two turns can't take one seq.
        let (lock, user_lock) = (self.lock_row_of("c"), self.lock_row_of("u"));
        let _writer = self.chat_writer().await;
        let (target, role) = start.target();
        let now = now_ms();
        on_db!(self, db => {
            let mut tx = db.begin_with(self.write_transaction()).await?;
            // The conversation named, or the one holding the message named.
            let found: Option<(String, String, Option<String>)> = match target {
                Some(id) => sqlx::query_as(&format!(
                    "SELECT c.id, c.title, c.leaf_id FROM conversations c WHERE c.user_id = $2 \
                     AND (c.id = $1 OR c.id = (SELECT m.conversation_id FROM messages m \
                       WHERE m.id = $1 AND m.role = $3)){lock}"
                ))
                .bind(id)
                .bind(user_id)
                .bind(role)
                .fetch_optional(&mut *tx)
                .await?,
                None => {
                    let id = Uuid::new_v4().to_string();
                    let (source, key_id) = match start {
                        TurnStart::Api { key_id, .. } => ("api", Some(key_id)),
                        _ => ("browser", None),
                    };
                    sqlx::query(
                        "INSERT INTO conversations (id, user_id, title, created_at, updated_at, \
                           source, api_key_id) VALUES ($1, $2, $3, $4, $4, $5, $6)",
                    )
                    .bind(&id)
                    .bind(user_id)
                    .bind(new_title)
                    .bind(now)
                    .bind(source)
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?;
                    Some((id, new_title.to_owned(), None))
                }
            };
            let Some((conversation_id, title, leaf)) = found else {
                return Ok(TurnBegun::NotFound);
            };
            let generating = count_generating!(tx, user_id, user_lock);
            if usize::try_from(generating).unwrap_or(usize::MAX) >= max_generating {
                return Ok(TurnBegun::TooMany(max_generating));
            }
            let rows = sqlx::query(
                "SELECT id, parent_id, seq, role, content, status FROM messages \
                 WHERE conversation_id = $1",
            )
            .bind(&conversation_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(turn_row)
            .collect::<Result<Vec<_>, StoreError>>()?;
            if rows.iter().any(|r| r.streaming) {
                return Ok(TurnBegun::Busy);
            }
            let Some(plan) = plan_turn(&rows, leaf.as_deref(), start) else {
                return Ok(TurnBegun::NotFound);
            };
            let (turn, question_parent) = plan.into_turn(conversation_id, title);
            let mut seq = rows.iter().map(|r| r.node.seq).max().unwrap_or(0);
            for row in turn.rows(model, question_parent) {
                seq += 1;
                insert_message!(tx, &turn.conversation_id, seq, now, row);
            }
            sqlx::query("UPDATE conversations SET updated_at = $1, leaf_id = $2 WHERE id = $3")
                .bind(now)
                .bind(&turn.assistant_message_id)
                .bind(&turn.conversation_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(TurnBegun::Started(turn))
        })
    }

    /// Keeps what an answer has generated so far, so a reader who comes
    /// back (or reads from another replica) sees it.
    pub async fn save_partial_answer(
        &self,
        message_id: &str,
        content: &str,
    ) -> Result<(), StoreError> {
        let _writer = self.chat_writer().await;
        on_db!(self, db => sqlx::query(
            "UPDATE messages SET content = $1 WHERE id = $2 AND status = 'streaming'",
        )
        .bind(content)
        .bind(message_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Says that this replica is still generating these answers.
    pub async fn heartbeat(&self, message_ids: &[String]) -> Result<(), StoreError> {
        if message_ids.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = (0..message_ids.len())
            .map(|i| format!("${}", i + 2))
            .collect();
        let sql = format!(
            "UPDATE messages SET heartbeat_at = $1 WHERE status = 'streaming' AND id IN ({})",
            list.join(", ")
        );
        let _writer = self.chat_writer().await;
        on_db!(self, db => {
            let mut query = sqlx::query(&sql).bind(now_ms());
            for id in message_ids {
                query = query.bind(id);
            }
            query.execute(db).await?.rows_affected()
        });
        Ok(())
    }

    /// Keeps the passages a streaming answer was given.
    pub async fn save_answer_sources(
        &self,
        message_id: &str,
        sources: &[Source],
        searched_for: Option<&str>,
    ) -> Result<(), StoreError> {
        let _writer = self.chat_writer().await;
        on_db!(self, db => sqlx::query(
            "UPDATE messages SET sources = $1, search_query = $2 \
             WHERE id = $3 AND status = 'streaming'",
        )
        .bind(sources_json(sources))
        .bind(searched_for)
        .bind(message_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// One of the user's answers, as stored now (`None` if it is not theirs).
    pub async fn owned_answer(
        &self,
        user_id: &str,
        message_id: &str,
    ) -> Result<Option<MessageView>, StoreError> {
        on_db!(self, db => sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS}, NULL AS rating \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.id = $1 AND c.user_id = $2 AND m.role = 'assistant'"
        ))
        .bind(message_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(message_from_row)
        .transpose())
    }

    /// Whether `message_id` is one of the user's messages in `role`.
    pub async fn owns_message(
        &self,
        user_id: &str,
        message_id: &str,
        role: &str,
    ) -> Result<bool, StoreError> {
        let found: Option<i32> = on_db!(self, db => sqlx::query_scalar(
            "SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.id = $1 AND c.user_id = $2 AND m.role = $3",
        )
        .bind(message_id)
        .bind(user_id)
        .bind(role)
        .fetch_optional(db)
        .await?);
        Ok(found.is_some())
    }

    /// One of the user's answers: its status, and its text after the first
    /// `from_chars` characters (`None` if it is not theirs).
    pub async fn answer_tail(
        &self,
        user_id: &str,
        message_id: &str,
        from_chars: usize,
    ) -> Result<Option<(MessageStatus, String)>, StoreError> {
        let row: Option<(String, String)> = on_db!(self, db => sqlx::query_as(
            "SELECT m.status, substr(m.content, CAST($3 AS INTEGER)) FROM messages m \
             JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.id = $1 AND c.user_id = $2 AND m.role = 'assistant'",
        )
        .bind(message_id)
        .bind(user_id)
        .bind(db_int(from_chars.saturating_add(1)))
        .fetch_optional(db)
        .await?);
        row.map(|(status, tail)| {
            MessageStatus::parse(&status)
                .map(|status| (status, tail))
                .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))
        })
        .transpose()
    }

    /// Asks whichever replica generates one of the user's answers to stop
    /// it; false if it is not theirs or not generating.
    pub async fn request_stop(&self, user_id: &str, message_id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE messages SET stop_requested = 1 WHERE id = $1 AND status = 'streaming' \
             AND conversation_id IN (SELECT id FROM conversations WHERE user_id = $2)",
        )
        .bind(message_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// The answers still generating that someone asked to stop.
    pub async fn stop_requests(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT id FROM messages WHERE status = 'streaming' AND stop_requested = 1",
        )
        .fetch_all(db)
        .await?))
    }

    /// Marks an answer whose generation ended without finishing it as
    /// incomplete, keeping what it had.
    pub async fn abandon_answer(&self, message_id: &str, error: &str) -> Result<(), StoreError> {
        on_db!(self, db => sqlx::query(
            "UPDATE messages SET status = 'incomplete', error = $1 \
             WHERE id = $2 AND status = 'streaming'",
        )
        .bind(error)
        .bind(message_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Records how an answer ended.
    pub async fn finish_answer(
        &self,
        message_id: &str,
        record: &AnswerRecord,
    ) -> Result<(), StoreError> {
        let _writer = self.chat_writer().await;
        on_db!(self, db => sqlx::query(
            "UPDATE messages SET model = $1, content = $2, status = $3, error = $4, \
             prompt_tokens = $5, completion_tokens = $6, ttft_ms = $7, total_ms = $8, \
             sources = $9, notice = $10, search_query = $11 WHERE id = $12",
        )
        .bind(&record.model)
        .bind(&record.content)
        .bind(record.status.as_str())
        .bind(&record.error)
        .bind(i64::from(record.prompt_tokens))
        .bind(i64::from(record.completion_tokens))
        .bind(record.ttft_ms.map(db_int))
        .bind(db_int(record.total_ms))
        .bind(sources_json(&record.sources))
        .bind(&record.notice)
        .bind(&record.searched_for)
        .bind(message_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(())
    }
}

/// What a turn adds, worked out from the conversation's messages.
#[derive(Debug)]
struct TurnPlan {
    /// The question that exists (regenerating), else `None`: a new one.
    question_id: Option<String>,
    question: String,
    /// The message a new question follows.
    question_parent: Option<String>,
    history: Vec<HistoryMessage>,
}

/// A message row to insert: id, role, content, status, model, parent.
type NewRow<'a> = (
    &'a str,
    &'static str,
    &'a str,
    &'static str,
    Option<&'a str>,
    Option<String>,
);

impl TurnPlan {
    /// The turn, and the message its new question (if any) follows.
    fn into_turn(self, conversation_id: String, title: String) -> (NewTurn, Option<String>) {
        let turn = NewTurn {
            user_message_id: self
                .question_id
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
            assistant_message_id: Uuid::new_v4().to_string(),
            regenerated: self.question_id.is_some(),
            conversation_id,
            title,
            question: self.question,
            history: self.history,
        };
        (turn, self.question_parent)
    }
}

impl NewTurn {
    /// The rows the turn adds, in order: its question unless regenerating
    /// (after `question_parent`), then the streaming answer.
    fn rows<'a>(&'a self, model: &'a str, question_parent: Option<String>) -> Vec<NewRow<'a>> {
        let answer = (
            self.assistant_message_id.as_str(),
            "assistant",
            "",
            "streaming",
            Some(model),
            Some(self.user_message_id.clone()),
        );
        if self.regenerated {
            return vec![answer];
        }
        let question = (
            self.user_message_id.as_str(),
            "user",
            self.question.as_str(),
            "complete",
            None,
            question_parent,
        );
        vec![question, answer]
    }
}

/// `None` when the start names a message this conversation doesn't have
/// in that role.
fn plan_turn(rows: &[Row], leaf: Option<&str>, start: TurnStart<'_>) -> Option<TurnPlan> {
    let tree = Tree::new(rows.iter().map(|r| r.node.clone()).collect());
    let row = |id: &str| rows.iter().find(|r| r.node.id == id);
    let (question_id, question, question_parent) = match start {
        TurnStart::Api { text, .. } => (None, text.to_owned(), None),
        TurnStart::Ask { text, after, .. } => {
            let parent = match after {
                Some(id) if tree.contains(id) => Some(id.to_owned()),
                Some(_) => return None,
                None => tree.path_to(leaf).pop(),
            };
            (None, text.to_owned(), parent)
        }
        TurnStart::Regenerate { answer_id } => {
            let question = row(tree.parent(answer_id)?)?;
            (
                Some(question.node.id.clone()),
                question.content.clone(),
                question.node.parent.clone(),
            )
        }
        TurnStart::Edit { question_id, text } => {
            let question = row(question_id)?;
            (None, text.to_owned(), question.node.parent.clone())
        }
    };
    let history = match &question_parent {
        Some(parent) => tree
            .path_to(Some(parent))
            .iter()
            .filter_map(|id| row(id))
            .filter(|r| !r.content.is_empty())
            .map(|r| {
                Some(HistoryMessage {
                    role: parse_role(&r.role).ok()?,
                    content: r.content.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    Some(TurnPlan {
        question_id,
        question,
        question_parent,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, parent: Option<&str>, seq: i64, role: &str, content: &str) -> Row {
        Row {
            node: Node {
                id: id.into(),
                parent: parent.map(Into::into),
                seq,
            },
            role: role.into(),
            content: content.into(),
            streaming: false,
        }
    }

    fn conversation() -> Vec<Row> {
        vec![
            row("q1", None, 1, "user", "first?"),
            row("a1", Some("q1"), 2, "assistant", "one"),
            row("q2", Some("a1"), 3, "user", "second?"),
            row("a2", Some("q2"), 4, "assistant", "two"),
        ]
    }

    fn contents(plan: &TurnPlan) -> Vec<&str> {
        plan.history.iter().map(|m| m.content.as_str()).collect()
    }

    #[test]
    fn a_question_follows_the_branch_shown() {
        let rows = conversation();
        let start = TurnStart::Ask {
            conversation_id: None,
            after: None,
            text: "third?",
        };
        let plan = plan_turn(&rows, Some("a2"), start).unwrap();
        assert_eq!(plan.question_parent.as_deref(), Some("a2"));
        assert_eq!(contents(&plan), ["first?", "one", "second?", "two"]);
        assert!(plan.question_id.is_none());
        // A new conversation has no history.
        let plan = plan_turn(&[], None, start).unwrap();
        assert!(plan.question_parent.is_none() && plan.history.is_empty());
        // Asked from a tab that shows an earlier branch: it follows that.
        let after = TurnStart::Ask {
            conversation_id: None,
            after: Some("a1"),
            text: "other?",
        };
        let plan = plan_turn(&rows, Some("a2"), after).unwrap();
        assert_eq!(contents(&plan), ["first?", "one"]);
        let elsewhere = TurnStart::Ask {
            conversation_id: None,
            after: Some("not-here"),
            text: "x",
        };
        assert!(plan_turn(&rows, Some("a2"), elsewhere).is_none());
    }

    #[test]
    fn regenerating_answers_the_same_question_with_the_same_history() {
        let rows = conversation();
        let plan = plan_turn(&rows, Some("a2"), TurnStart::Regenerate { answer_id: "a2" }).unwrap();
        assert_eq!(plan.question_id.as_deref(), Some("q2"));
        assert_eq!(plan.question, "second?");
        assert_eq!(contents(&plan), ["first?", "one"]);
        // A question is not an answer to regenerate.
        assert!(plan_turn(&rows, None, TurnStart::Regenerate { answer_id: "q1" }).is_none());
    }

    #[test]
    fn an_edit_branches_where_the_question_was() {
        let rows = conversation();
        let start = TurnStart::Edit {
            question_id: "q2",
            text: "second, better?",
        };
        let plan = plan_turn(&rows, Some("a2"), start).unwrap();
        assert_eq!(plan.question_parent.as_deref(), Some("a1"));
        assert_eq!(plan.question, "second, better?");
        assert_eq!(contents(&plan), ["first?", "one"]);
        let first = TurnStart::Edit {
            question_id: "q1",
            text: "first, again?",
        };
        assert!(plan_turn(&rows, None, first).unwrap().history.is_empty());
        let unknown = TurnStart::Edit {
            question_id: "nope",
            text: "x",
        };
        assert!(plan_turn(&rows, None, unknown).is_none());
    }
}
