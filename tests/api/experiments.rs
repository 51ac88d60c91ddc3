//! Experiments: sticky assignment per user, variant settings reach the
//! model, exposures and events carry the variant, and the dashboard compares
//! variants.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http, started};
use ragchat::ops::experiments::{Experiment, Variant};

fn tone_experiment() -> Experiment {
    let variant = |name: &str, system_prompt: Option<&str>, temperature: Option<f32>| Variant {
        name: name.into(),
        weight: 1,
        system_prompt: system_prompt.map(Into::into),
        model: None,
        temperature,
        top_k: None,
    };
    Experiment {
        name: "tone".into(),
        variants: vec![
            variant("control", None, None),
            variant("pirate", Some("Answer like a pirate."), Some(0.0)),
        ],
    }
}

#[tokio::test]
async fn users_keep_their_variant_and_the_model_gets_its_settings() {
    let up = upstream(Behaviour::Stream {
        tokens: vec!["Arr."],
        usage: true,
    })
    .await;
    let mut app = spawn_app_http(&up.base_url, |s| {
        s.experiments = vec![tone_experiment()];
        s.llm.temperature = 0.3;
    })
    .await;
    let mut pirates = 0;
    let mut votes = Vec::new();
    for user in 0..20 {
        app.client = client();
        for turn in 0..2 {
            let events = app
                .chat(None, &format!("question {turn} of user {user}"))
                .await;
            let (_, message_id) = started(&events);
            votes.push(message_id);
        }
        let seen = up.seen.lock().unwrap().requests.clone();
        let (a, b) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
        let pirate = a.contains("Answer like a pirate.");
        assert_eq!(
            pirate,
            b.contains("Answer like a pirate."),
            "sticky per user"
        );
        if pirate {
            pirates += 1;
            assert!(a.contains("\"temperature\":0.0"), "{a}");
        } else {
            assert!(a.contains("\"temperature\":0.3"), "{a}");
        }
        // Every vote from this browser: pirates are liked, the control is not.
        for message_id in votes.drain(..) {
            let rating = if pirate { "up" } else { "down" };
            let voted = app
                .post_form(
                    "/api/rate",
                    &[("message_id", &message_id), ("rating", rating)],
                )
                .await;
            assert_eq!(voted.status(), 200);
        }
    }
    assert!(
        (1..20).contains(&pirates),
        "both variants get users: {pirates}"
    );

    let labels: Vec<(String, i64)> = sqlx::query_as(
        "SELECT variant, COUNT(*) FROM chat_events GROUP BY variant ORDER BY variant",
    )
    .fetch_all(&app.db())
    .await
    .unwrap();
    assert_eq!(
        labels,
        [
            ("tone:control".to_string(), 2 * (20 - pirates)),
            ("tone:pirate".to_string(), 2 * pirates)
        ]
    );
    let exposures: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT variant, COUNT(*), CAST(SUM(turns) AS BIGINT) FROM experiment_exposures GROUP BY variant ORDER BY variant",
    )
    .fetch_all(&app.db())
    .await
    .unwrap();
    assert_eq!(
        exposures,
        [
            ("control".to_string(), 20 - pirates, 2 * (20 - pirates)),
            ("pirate".to_string(), pirates, 2 * pirates)
        ]
    );
    let variant: Option<String> = sqlx::query_scalar("SELECT variant FROM feedback LIMIT 1")
        .fetch_one(&app.db())
        .await
        .unwrap();
    assert!(variant.unwrap().starts_with("tone:"));

    // The first account is admin and sees the comparison.
    app.client = client();
    app.post_form(
        "/api/sign_up",
        &[("username", "ada"), ("password", "correct horse")],
    )
    .await;
    let d: app::wire::Dashboard = app
        .post_form("/api/admin/dashboard", &[("hours", "1")])
        .await
        .json()
        .await
        .unwrap();
    let tone = &d.experiments[0];
    assert_eq!(tone.name, "tone");
    let (control, pirate) = (&tone.variants[0], &tone.variants[1]);
    assert_eq!(control.users + pirate.users, 20);
    assert_eq!(pirate.up_rate.unwrap().rate, 1.0);
    assert_eq!(control.up_rate.unwrap().rate, 0.0);
    assert!(control.p_value.is_none());
    let p = pirate.p_value.unwrap();
    assert!(p < 0.001, "all up vs all down is significant: {p}");
}

#[tokio::test]
async fn a_variant_can_switch_the_model() {
    let main = upstream(Behaviour::Stream {
        tokens: vec!["main"],
        usage: true,
    })
    .await;
    let small = upstream(Behaviour::Stream {
        tokens: vec!["small"],
        usage: true,
    })
    .await;
    let mut app = spawn_app_http(&main.base_url, |s| {
        s.llm.models.insert(
            "small".into(),
            crate::helpers::http_model(&small.base_url, "small-model"),
        );
        s.experiments = vec![Experiment {
            name: "model".into(),
            variants: vec![
                Variant {
                    name: "control".into(),
                    weight: 1,
                    system_prompt: None,
                    model: None,
                    temperature: None,
                    top_k: None,
                },
                Variant {
                    name: "small".into(),
                    weight: 1,
                    system_prompt: None,
                    model: Some("small".into()),
                    temperature: None,
                    top_k: None,
                },
            ],
        }];
    })
    .await;
    let mut on_small = 0;
    for user in 0..12 {
        app.client = client();
        let mut answers = Vec::new();
        for turn in 0..2 {
            let events = app
                .chat(None, &format!("question {turn} of user {user}"))
                .await;
            answers.push(crate::helpers::answer_text(&events));
        }
        assert_eq!(answers[0], answers[1], "sticky per user");
        if answers[0] == "small" {
            on_small += 1;
        }
    }
    assert!((1..12).contains(&on_small), "both variants get users");
    assert_eq!(small.seen.lock().unwrap().requests.len(), 2 * on_small);
    let by_variant: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT variant, model, COUNT(*) FROM chat_events GROUP BY variant, model ORDER BY variant",
    )
    .fetch_all(&app.db())
    .await
    .unwrap();
    assert_eq!(
        by_variant,
        [
            (
                "model:control".to_string(),
                "test-model".to_string(),
                2 * (12 - on_small as i64)
            ),
            (
                "model:small".to_string(),
                "small-model".to_string(),
                2 * on_small as i64
            ),
        ]
    );
}
