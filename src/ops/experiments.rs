//! Experiments defined in the config: weighted variants that change the
//! system prompt, model, temperature or number of retrieved passages. Each user is
//! assigned a variant per experiment by hashing the user id with the
//! experiment's name: sticky (the same user always gets the same variant),
//! deterministic across replicas, and independent between experiments.

pub use crate::config::{Experiment, Variant};
use sha2::{Digest, Sha256};

/// What a user's variants change for one turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub system_prompt: Option<String>,
    /// The name of a configured model (`[llm.models.<name>]`).
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    /// `experiment:variant` for every experiment the user is in.
    pub assignments: Vec<(String, String)>,
}

impl Overrides {
    /// The variant label events and votes carry: `exp:variant`, comma-joined.
    pub fn label(&self) -> Option<String> {
        (!self.assignments.is_empty()).then(|| {
            self.assignments
                .iter()
                .map(|(e, v)| format!("{e}:{v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// A number in `0..total` from the user and the experiment: uniform, and
/// unrelated between experiments.
fn bucket(user_id: &str, experiment: &str, total: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(experiment.as_bytes())
        .chain_update([0])
        .chain_update(user_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % total.max(1)
}

impl Experiment {
    /// The user's variant (`None` if the experiment has no weighted variant).
    pub fn assign(&self, user_id: &str) -> Option<&Variant> {
        let total: u64 = self.variants.iter().map(|v| u64::from(v.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut at = bucket(user_id, &self.name, total);
        for variant in &self.variants {
            let weight = u64::from(variant.weight);
            if at < weight {
                return Some(variant);
            }
            at -= weight;
        }
        None
    }
}

/// The overrides for a user across all experiments (later experiments win
/// where two change the same setting).
pub fn overrides_for(experiments: &[Experiment], user_id: &str) -> Overrides {
    let mut out = Overrides::default();
    for experiment in experiments {
        let Some(variant) = experiment.assign(user_id) else {
            continue;
        };
        if variant.system_prompt.is_some() {
            out.system_prompt.clone_from(&variant.system_prompt);
        }
        if variant.model.is_some() {
            out.model.clone_from(&variant.model);
        }
        if variant.temperature.is_some() {
            out.temperature = variant.temperature;
        }
        if variant.top_k.is_some() {
            out.top_k = variant.top_k;
        }
        out.assignments
            .push((experiment.name.clone(), variant.name.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(weights: &[u32]) -> Experiment {
        Experiment {
            name: "prompt-test".into(),
            variants: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| Variant {
                    name: format!("v{i}"),
                    weight,
                    system_prompt: None,
                    model: None,
                    temperature: None,
                    top_k: None,
                })
                .collect(),
        }
    }

    #[test]
    fn assignment_is_sticky() {
        let e = experiment(&[1, 1, 1]);
        for i in 0..100 {
            let user = format!("user-{i}");
            let first = e.assign(&user).unwrap().name.clone();
            for _ in 0..5 {
                assert_eq!(e.assign(&user).unwrap().name, first);
            }
        }
    }

    #[test]
    fn the_split_follows_the_weights_over_10000_users() {
        for weights in [&[50, 50][..], &[80, 20], &[1, 1, 1, 1]] {
            let e = experiment(weights);
            let total: u32 = weights.iter().sum();
            let mut counts = vec![0u32; weights.len()];
            for i in 0..10_000 {
                let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{i}").as_bytes());
                let name = &e.assign(&id.to_string()).unwrap().name;
                counts[name[1..].parse::<usize>().unwrap()] += 1;
            }
            for (count, weight) in counts.iter().zip(weights) {
                let expected = 10_000.0 * f64::from(*weight) / f64::from(total);
                // ±3% of all users: over 10 standard deviations for 10,000 draws.
                assert!(
                    (f64::from(*count) - expected).abs() < 300.0,
                    "weights {weights:?}: counts {counts:?}"
                );
            }
        }
    }

    #[test]
    fn experiments_are_independent() {
        let a = experiment(&[1, 1]);
        let mut b = experiment(&[1, 1]);
        b.name = "another".into();
        let same = (0..2_000)
            .filter(|i| {
                let user = format!("u{i}");
                a.assign(&user).unwrap().name == b.assign(&user).unwrap().name
            })
            .count();
        // Independent halves agree about half the time.
        assert!((900..1_100).contains(&same), "{same}");
    }

    #[test]
    fn overrides_and_labels() {
        let mut e = experiment(&[0, 1]);
        e.variants[1].temperature = Some(0.0);
        e.variants[1].top_k = Some(3);
        e.variants[1].model = Some("small".into());
        let o = overrides_for(&[e], "anyone");
        assert_eq!(o.temperature, Some(0.0));
        assert_eq!(o.model.as_deref(), Some("small"));
        assert_eq!(o.top_k, Some(3));
        assert_eq!(o.label().as_deref(), Some("prompt-test:v1"));
        assert_eq!(overrides_for(&[], "anyone").label(), None);
    }
}
