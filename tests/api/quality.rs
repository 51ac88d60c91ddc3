//! The operators' quality loop: a down-voted answer's document under weak
//! sources, an unrelated question under knowledge gaps, for admins only.

use crate::documents::fixture;
use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http, started, TestApp};
use app::wire::QualityReport;

async fn sign_up(app: &TestApp, username: &str) {
    let response = app
        .post_form(
            "/api/sign_up",
            &[("username", username), ("password", "correct horse")],
        )
        .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

async fn vote_down(app: &TestApp, message_id: &str) {
    let response = app
        .post_form(
            "/api/rate",
            &[("message_id", message_id), ("rating", "down")],
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_quality_view_shows_weak_sources_and_knowledge_gaps_to_admins() {
    let up = upstream(Behaviour::Sequence(vec![
        Behaviour::Stream {
            tokens: vec!["The bridge was completed in 1873 ", "by Mara Quist [1]."],
            usage: true,
        },
        Behaviour::Stream {
            tokens: vec![
                "The documents do not say ",
                "how to feed a sourdough starter.",
            ],
            usage: true,
        },
    ]))
    .await;
    let mut app = spawn_app_http(&up.base_url, |_| {}).await;
    sign_up(&app, "ada").await;
    let doc = app
        .ingest("velloran-survey.pdf", fixture("velloran-survey.pdf"))
        .await;
    let (_, answered) = started(
        &app.chat(None, "When was the Velloran bridge completed?")
            .await,
    );
    vote_down(&app, &answered).await;
    // Asked twice in other words (the second is the latest).
    app.chat(None, "How often should I feed my sourdough starter?")
        .await;
    let unrelated = "How often does a sourdough starter need feeding?";
    app.chat(None, unrelated).await;

    let response = app
        .post_form("/api/admin/quality", &[("hours", "24")])
        .await;
    assert_eq!(response.status(), 200);
    let report: QualityReport = response.json().await.unwrap();

    // Weak sources: the document version of the down-voted answer.
    let version = report
        .documents
        .iter()
        .find(|d| d.document_id == doc.id)
        .unwrap_or_else(|| panic!("{} not among {:?}", doc.id, report.documents));
    assert_eq!(version.document_name, "velloran-survey.pdf");
    assert_eq!(version.version, Some(1));
    assert_eq!((version.down, version.up), (1, 0));
    assert_eq!(version.up_rate.rate, 0.0);
    assert!(version.down_rate.low > 0.0);
    assert_eq!(version.answers.len(), 1);
    assert_eq!(
        version.answers[0].question,
        "When was the Velloran bridge completed?"
    );
    assert!(version.collection.is_some());
    assert!(report
        .passages
        .iter()
        .any(|p| p.document_id == doc.id && p.down == 1 && p.passage.is_some()));

    // Knowledge gaps: the unrelated question (the search found nothing
    // close, and the answer said so) and the down-voted one.
    let gap = |question: &str| {
        report
            .gaps
            .iter()
            .find(|g| g.question == question)
            .unwrap_or_else(|| panic!("{question:?} not among {:?}", report.gaps))
    };
    let unanswered = gap(unrelated);
    assert_eq!(
        (unanswered.count, unanswered.people),
        (2, 1),
        "grouped by meaning"
    );
    assert_eq!(
        unanswered.also_asked,
        ["How often should I feed my sourdough starter?"]
    );
    assert_eq!(unanswered.reasons.not_covered, 2);
    assert_eq!(
        unanswered.reasons.low_score, 2,
        "best passage {:?} under {}",
        unanswered.best_score, report.low_score
    );
    assert_eq!(unanswered.reasons.down_voted, 0);
    assert!(report.grouped_by_meaning);
    assert_eq!(report.gaps.len(), 2);
    let voted = gap("When was the Velloran bridge completed?");
    assert_eq!(voted.reasons.down_voted, 1);
    assert_eq!(voted.reasons.not_covered, 0);

    // Anyone else is refused.
    app.client = client();
    sign_up(&app, "bob").await;
    let refused = app
        .post_form("/api/admin/quality", &[("hours", "24")])
        .await;
    assert_eq!(refused.status(), 403);
    app.client = client();
    app.chat(None, "a guest").await;
    let refused = app
        .post_form("/api/admin/quality", &[("hours", "24")])
        .await;
    assert_eq!(refused.status(), 403);
}
