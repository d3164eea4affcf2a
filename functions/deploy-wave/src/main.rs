//! Wiring only: see the library for the handler.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifeboat::serve(deploy_wave::handle).await
}
