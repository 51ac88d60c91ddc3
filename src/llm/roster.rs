//! The models a turn can be answered by: the default one (behind retries,
//! with its fallbacks) and the named ones from `[llm.models.<name>]`, which
//! experiment variants and spent token budgets switch to.

use super::ChatModel;
use std::collections::HashMap;
use std::sync::Arc;

pub struct ModelRoster {
    default: Arc<dyn ChatModel>,
    named: HashMap<String, Arc<dyn ChatModel>>,
}

impl ModelRoster {
    pub fn new(default: Arc<dyn ChatModel>, named: HashMap<String, Arc<dyn ChatModel>>) -> Self {
        Self { default, named }
    }

    /// Only the default model.
    pub fn single(default: Arc<dyn ChatModel>) -> Self {
        Self::new(default, HashMap::new())
    }

    pub fn default_model(&self) -> &Arc<dyn ChatModel> {
        &self.default
    }

    /// The model configured under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ChatModel>> {
        self.named.get(name)
    }

    /// The ids an API request may name a model by: the default model's
    /// name, then each name under `[llm.models]` (sorted).
    pub fn ids(&self) -> Vec<String> {
        let mut named: Vec<&String> = self.named.keys().collect();
        named.sort_unstable();
        let first = self.default.name();
        std::iter::once(first.to_owned())
            .chain(named.into_iter().filter(|n| n.as_str() != first).cloned())
            .collect()
    }

    /// The model an API request names by `id` (see [`Self::ids`]), and its
    /// route (`default` or the name under `[llm.models]`).
    pub fn by_id(&self, id: &str) -> Option<(Arc<dyn ChatModel>, String)> {
        if id == self.default.name() {
            return Some((self.default.clone(), "default".to_owned()));
        }
        self.named
            .get(id)
            .map(|model| (model.clone(), id.to_owned()))
    }

    /// Fails at start-up when the config refers to a model it doesn't define,
    /// instead of quietly answering with the default one.
    pub fn require(&self, name: &str, used_by: &str) -> anyhow::Result<()> {
        if self.named.contains_key(name) {
            return Ok(());
        }
        let mut known: Vec<&str> = self.named.keys().map(String::as_str).collect();
        known.sort_unstable();
        anyhow::bail!(
            "{used_by} names the model {name:?}, which is not configured under [llm.models] (configured: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )
    }
}
