use anyhow::Context;
use ragchat::{config::Settings, startup::Application, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::load().context("loading configuration")?;
    let app = Application::build(settings).await?;
    tracing::info!(url = %format!("http://{}", app.address()), "listening");
    app.run_until_stopped().await
}
