use anyhow::Context;
use ragchat::{config::Settings, startup::Application, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::load().context("loading configuration")?;
    let app = Application::build(settings).await?;
    let url = format!("http://{}", app.address());
    tracing::info!(%url, "listening");
    eprintln!("\n  RAG Chat is ready at {url}\n");
    app.run_until_stopped().await
}
