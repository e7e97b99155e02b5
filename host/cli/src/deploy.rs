//! `weir deploy`: the admin API from the command line — upload a new plugin
//! version to a step of a running pipeline, roll back, or list versions.

#![allow(clippy::print_stdout, reason = "the answer is the command's output")]

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The component (.wasm) to deploy; leave out with --rollback or --list.
    pub component: Option<PathBuf>,
    /// The plugin step to deploy to.
    #[arg(long)]
    pub step: String,
    /// Address of the running pipeline's server (`[server] listen`).
    #[arg(long, env = "WEIR_SERVER", default_value = "127.0.0.1:9464")]
    pub server: String,
    /// Bearer token with the `admin` scope (`read` for --list).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (for https:// servers
    /// with a private CA); default: the Web PKI roots.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The pipeline (default: the only one the server runs).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Roll the step back to the version before the active one (or to --to).
    #[arg(long, conflicts_with = "component")]
    pub rollback: bool,
    /// With --rollback: the version to return to (sha256, or a prefix of at least 8 hex digits naming one version).
    #[arg(long, requires = "rollback")]
    pub to: Option<String>,
    /// List the step's versions instead.
    #[arg(long, conflicts_with_all = ["component", "rollback"])]
    pub list: bool,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl Client {
    fn new(args: &DeployArgs) -> anyhow::Result<Self> {
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if let Some(ca) = &args.ca {
            let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", ca.display()))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect::<Vec<_>>();
            anyhow::ensure!(!certs.is_empty(), "`{}` holds no PEM certificate", ca.display());
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                .build();
            config = config.tls_config(tls);
        }
        let server = &args.server;
        let base = if server.contains("://") { server.to_string() } else { format!("http://{server}") };
        Ok(Client { agent: config.build().new_agent(), base, auth: args.token.as_ref().map(|t| format!("Bearer {t}")) })
    }

    /// Sends a request; returns the status and the JSON answer.
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> anyhow::Result<(u16, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let auth = self.auth.as_deref().unwrap_or("");
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", auth).call(),
            (_, Some(b)) => {
                self.agent.post(&url).header("authorization", auth).header("content-type", "application/wasm").send(b)
            }
            (_, None) => self.agent.post(&url).header("authorization", auth).send_empty(),
        };
        let mut resp = result.map_err(|e| anyhow::anyhow!("cannot reach the Weir server at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().with_config().limit(64 << 20).read_to_string()?;
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok((status, value))
    }
}

pub fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args)?;
    let pipeline = match &args.pipeline {
        Some(p) => p.clone(),
        None => only_pipeline(&client)?,
    };
    let step_path = format!("/api/v1/pipelines/{pipeline}/steps/{}", args.step);
    let (status, answer) = if args.list {
        client.call("GET", &format!("{step_path}/versions"), None)?
    } else if args.rollback {
        let body = args.to.as_ref().map(|to| serde_json::json!({ "to": to }).to_string());
        client.call("POST", &format!("{step_path}/rollback"), body.as_deref().map(str::as_bytes))?
    } else {
        let Some(path) = &args.component else {
            anyhow::bail!("give the component to deploy (a .wasm file), or --rollback, or --list");
        };
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", path.display()))?;
        client.call("POST", &format!("{step_path}/versions"), Some(&bytes))?
    };
    if !(200..300).contains(&status) {
        let message = answer.get("error").and_then(|e| e.as_str()).map_or_else(|| answer.to_string(), str::to_string);
        eprintln!("weir deploy: step `{}`: {message} (HTTP {status})", args.step);
        return Ok(ExitCode::FAILURE);
    }
    if args.list {
        for v in answer["versions"].as_array().into_iter().flatten() {
            println!(
                "{}  {:<11} {:<8} {}{}",
                v["digest"].as_str().unwrap_or_default(),
                v["status"].as_str().unwrap_or_default(),
                v["origin"].as_str().unwrap_or_default(),
                v["loaded_at"].as_str().unwrap_or_default(),
                v["error"].as_str().map(|e| format!("  {e}")).unwrap_or_default()
            );
        }
    } else {
        println!(
            "step `{}` runs {} ({}; compile {:.1} ms, init {:.1} ms)",
            args.step,
            answer["digest"].as_str().unwrap_or_default(),
            answer["origin"].as_str().unwrap_or_default(),
            answer["compile_ms"].as_f64().unwrap_or_default(),
            answer["init_ms"].as_f64().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn only_pipeline(client: &Client) -> anyhow::Result<String> {
    let (status, answer) = client.call("GET", "/api/v1/pipelines", None)?;
    anyhow::ensure!(status == 200, "the server at {} answered HTTP {status}: {answer}", client.base);
    let names: Vec<&str> =
        answer["pipelines"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    match names.as_slice() {
        [one] => Ok(one.to_string()),
        [] => anyhow::bail!("the server at {} runs no pipeline", client.base),
        many => anyhow::bail!("the server runs several pipelines ({}); name one with --pipeline", many.join(", ")),
    }
}
