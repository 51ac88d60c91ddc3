use anyhow::Context;
use ragchat::{config::Settings, documents::sandbox, startup::Application, telemetry};

fn main() -> anyhow::Result<()> {
    // Documents are parsed by this same binary in a capped child process.
    sandbox::serve_if_worker();
    serve()
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::load().context("loading configuration")?;
    let app = Application::build(settings).await?;
    let url = format!("http://{}", app.address());
    tracing::info!(%url, "listening");
    eprintln!("\n  RAG Chat is ready at {url}\n");
    app.run_until_stopped().await
}
