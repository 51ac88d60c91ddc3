//! An API turn (`/v1/chat/completions`): the request brings its whole
//! conversation, so nothing is read from storage; the turn is stored in a
//! conversation of its own (left out of the browser's list, kept for votes,
//! events and the quality view) and answered like a browser's turn.

use super::generation::ApiExtras;
use super::{title_from, turn_refused, ChatServiceImpl, Launch, ModelChoice};
use crate::ops::experiments::{overrides_for, Overrides};
use crate::store::{HistoryMessage, TurnBegun, TurnStart};
use app::error::AppError;
use app::ports::{Admission, ApiModel, ApiTurn, UserId};
use app::wire::ChatEvent;
use futures::stream::BoxStream;
use std::time::Instant;

impl ChatServiceImpl {
    pub(super) async fn complete_api(
        &self,
        user: &UserId,
        turn: ApiTurn,
    ) -> Result<BoxStream<'static, ChatEvent>, AppError> {
        self.check(&turn.question)?;
        let started = Instant::now();
        // The grounded model is the browser's chat: the user's experiments
        // apply. A model named by the client is answered by that model.
        let (choice, overrides) = match &turn.model {
            ApiModel::Grounded => {
                let overrides = overrides_for(&self.experiments, &user.0);
                let choice = self.pick_model(&Admission::Full, overrides.model.as_deref());
                (choice, overrides)
            }
            ApiModel::Plain(id) => {
                let (model, route) = self.models.by_id(id).ok_or(AppError::NotFound)?;
                let choice = ModelChoice {
                    model,
                    route,
                    notice: None,
                };
                (choice, Overrides::default())
            }
        };
        let grounded = turn.model == ApiModel::Grounded;
        let app_prompt = overrides
            .system_prompt
            .clone()
            .unwrap_or_else(|| self.settings.system_prompt.clone());
        // The client's system messages are its own instructions: they follow
        // the app's on the grounded model (whose rules about sources come
        // after them in the prompt), and replace them on a plain one.
        let system_prompt = match (grounded, turn.instructions) {
            (true, Some(extra)) => format!("{app_prompt}\n\n{extra}"),
            (false, Some(own)) => own,
            (_, None) => app_prompt,
        };
        let cap = self.settings.max_generating_per_user.max(1);
        let start = TurnStart::Api {
            key_id: &turn.key_id,
            text: &turn.question,
        };
        let begun = self
            .store
            .begin_turn(
                &user.0,
                start,
                choice.model.name(),
                &title_from(&turn.question),
                cap,
            )
            .await?;
        let mut stored = match begun {
            TurnBegun::Started(stored) => stored,
            refused => return Err(turn_refused(refused)),
        };
        stored.history = turn
            .history
            .into_iter()
            .map(|(role, content)| HistoryMessage { role, content })
            .collect();
        // Sampling the cache's key doesn't hold is answered afresh.
        let cacheable = turn.top_p.is_none() && turn.stop.is_empty();
        let launch = Launch {
            turn: stored,
            choice,
            system_prompt,
            temperature: turn
                .temperature
                .or(overrides.temperature)
                .unwrap_or(self.temperature),
            // The operator's limit is a ceiling for every client.
            max_tokens: turn
                .max_tokens
                .map_or(self.max_tokens, |asked| asked.clamp(1, self.max_tokens)),
            cache: self.cache.clone().filter(|_| cacheable),
            overrides,
            api: Some(ApiExtras {
                grounded,
                top_p: turn.top_p,
                stop: turn.stop,
                key_id: turn.key_id,
                key_name: turn.key_name,
            }),
            started,
        };
        self.launch(user, launch).await
    }
}
