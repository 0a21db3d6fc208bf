//! SMS through an HTTP gateway. The request (method, URL, query, headers,
//! credentials, form or JSON body) comes from configuration templates, so
//! 46elks, Twilio or a municipality's own gateway need no code of their own.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Client, Method};

use super::config::{BodyTemplate, HttpAuth, HttpMethod, HttpSmsConfig};
use super::{snippet, Delivery, NotifyError, SmsMessage, SmsSender};

/// How much of a refusal's body is read (the rest is not worth waiting for).
const MAX_BODY: usize = 2048;

/// Characters of a refusal's body kept for the audit log.
const SNIPPET_CHARS: usize = 200;

/// Replace `{phone}`, `{phone_digits}` and `{text}` in `template`, in one
/// pass, so a message that itself contains `{phone}` is not expanded again.
pub fn fill(template: &str, message: &SmsMessage) -> String {
    let digits = message.to.trim_start_matches('+');
    let mut out = String::with_capacity(template.len() + message.text.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (value, skip) = [
            ("{phone}", message.to.as_str()),
            ("{phone_digits}", digits),
            ("{text}", message.text.as_str()),
        ]
        .into_iter()
        .find(|(name, _)| tail.starts_with(name))
        .map_or(("{", 1), |(name, value)| (value, name.len()));
        out.push_str(value);
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

/// [`fill`] every string inside a JSON template (keys stay as written).
pub fn fill_json(template: &serde_json::Value, message: &SmsMessage) -> serde_json::Value {
    use serde_json::Value;
    match template {
        Value::String(s) => Value::String(fill(s, message)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_json(v, message)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_json(v, message)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An error with its causes, one line (reqwest's own text hides the cause).
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends SMS with one HTTP request per message.
#[derive(Debug)]
pub struct HttpSms {
    /// Built once: keeps connections and TLS sessions to the gateway warm.
    client: Client,
    config: HttpSmsConfig,
}

impl HttpSms {
    /// A sender for `config`. Needs no async runtime.
    pub fn new(config: &HttpSmsConfig) -> Result<HttpSms, NotifyError> {
        let mut builder = Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect would resend credentials and the code elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portvakt/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| NotifyError::Transport(format!("sms ca_file: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| NotifyError::Transport(describe(&e)))?;
        Ok(HttpSms {
            client,
            config: config.clone(),
        })
    }

    /// The time one send may take.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn request(&self, m: &SmsMessage) -> reqwest::RequestBuilder {
        let c = &self.config;
        let method = match c.method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
        };
        let mut req = self.client.request(method, c.url.clone());
        if !c.query.is_empty() {
            let query: Vec<(&str, String)> = c
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), fill(v, m)))
                .collect();
            req = req.query(&query);
        }
        for (name, value) in &c.headers {
            req = req.header(name.as_str(), fill(value, m));
        }
        req = match &c.auth {
            HttpAuth::None => req,
            HttpAuth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose()))
            }
            HttpAuth::Bearer(token) => req.bearer_auth(token.expose()),
        };
        match &c.body {
            BodyTemplate::None => req,
            BodyTemplate::Form(pairs) => {
                let form: Vec<(&str, String)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), fill(v, m)))
                    .collect();
                req.form(&form)
            }
            BodyTemplate::Json(template) => req.json(&fill_json(template, m)),
        }
    }

    fn success(&self, status: u16) -> bool {
        if self.config.success_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.config.success_status.contains(&status)
        }
    }
}

/// Status and the first [`MAX_BODY`] bytes of the answer.
async fn exchange(req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let mut resp = req.send().await?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    if !(200..300).contains(&status) {
        while let Some(chunk) = resp.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY {
                body.truncate(MAX_BODY);
                break;
            }
        }
    }
    Ok((status, body))
}

#[async_trait]
impl SmsSender for HttpSms {
    async fn send(&self, message: &SmsMessage) -> Result<Delivery, NotifyError> {
        let digits = message.to.trim_start_matches('+');
        let code = message.code.as_deref().unwrap_or("");
        let secrets = [message.text.as_str(), message.to.as_str(), digits, code];
        // reqwest's timeout covers the exchange; this one also covers DNS and
        // anything else, so the promise "never hangs" holds on its own.
        let outcome =
            tokio::time::timeout(self.config.timeout, exchange(self.request(message))).await;
        match outcome {
            Err(_) => Err(NotifyError::Timeout),
            Ok(Err(e)) if e.is_timeout() => Err(NotifyError::Timeout),
            // without_url: the URL may carry the number and text in its query.
            Ok(Err(e)) => Err(NotifyError::Transport(snippet(
                &describe(&e.without_url()),
                &secrets,
                SNIPPET_CHARS,
            ))),
            Ok(Ok((status, _))) if self.success(status) => Ok(Delivery {
                provider: format!("http {status}"),
            }),
            Ok(Ok((status, body))) => Err(NotifyError::Rejected {
                status,
                body_snippet: snippet(&String::from_utf8_lossy(&body), &secrets, SNIPPET_CHARS),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::Secret;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    /// One request as the fake gateway saw it.
    #[derive(Debug)]
    struct Seen {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A one-request HTTP server on 127.0.0.1 answering `status` with `body`,
    /// or never answering when `status` is `None`.
    async fn gateway(
        status: Option<u16>,
        reply: &'static str,
    ) -> (String, oneshot::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap().split(' ');
            let method = first.next().unwrap().to_owned();
            let target = first.next().unwrap().to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(": "))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            while buf.len() < head_end + length {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(buf[head_end..head_end + length].to_vec()).unwrap();
            let _ = tx.send(Seen {
                method,
                target,
                headers,
                body,
            });
            match status {
                Some(status) => {
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    sock.write_all(reply.as_bytes()).await.unwrap();
                }
                None => tokio::time::sleep(Duration::from_secs(60)).await,
            }
        });
        (url, rx)
    }

    fn config(url: &str, body: BodyTemplate) -> HttpSmsConfig {
        HttpSmsConfig {
            url: url.parse().unwrap(),
            method: HttpMethod::Post,
            headers: Vec::new(),
            auth: HttpAuth::None,
            body,
            query: Vec::new(),
            timeout: Duration::from_millis(300),
            success_status: Vec::new(),
            ca_pem: None,
        }
    }

    fn message() -> SmsMessage {
        SmsMessage {
            to: "+46701234567".into(),
            text: "Din engångskod är K7PM3Q".into(),
            code: Some("K7PM3Q".into()),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_are_filled_once() {
        let mut m = message();
        m.text = "see {phone}".into();
        assert_eq!(
            fill("{phone}/{phone_digits}: {text} {other}", &m),
            "+46701234567/46701234567: see {phone} {other}"
        );
        let json = serde_json::json!({ "to": ["{phone}"], "n": 1, "m": { "t": "{text}" } });
        assert_eq!(
            fill_json(&json, &m),
            serde_json::json!({ "to": ["+46701234567"], "n": 1, "m": { "t": "see {phone}" } })
        );
    }

    #[tokio::test]
    async fn a_form_body_with_basic_auth_and_headers() {
        let (url, seen) = gateway(Some(202), "{\"id\":\"s1\"}").await;
        let mut c = config(
            &url,
            BodyTemplate::Form(pairs(&[
                ("from", "Portal"),
                ("to", "{phone}"),
                ("message", "{text}"),
            ])),
        );
        c.auth = HttpAuth::Basic {
            username: "u123".into(),
            password: Secret::new("pw"),
        };
        c.headers = pairs(&[("X-Api-Key", "k-1")]);
        c.query = pairs(&[("dest", "{phone_digits}")]);
        let sms = HttpSms::new(&c).unwrap();
        let delivery = sms.send(&message()).await.unwrap();
        assert_eq!(delivery.provider, "http 202");

        let seen = seen.await.unwrap();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.target, "/send?dest=46701234567");
        assert_eq!(seen.header("authorization"), Some("Basic dTEyMzpwdw=="));
        assert_eq!(seen.header("x-api-key"), Some("k-1"));
        assert_eq!(
            seen.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let form: Vec<(String, String)> = form_urlencoded::parse(seen.body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            form,
            pairs(&[
                ("from", "Portal"),
                ("to", "+46701234567"),
                ("message", "Din engångskod är K7PM3Q")
            ])
        );
    }

    #[tokio::test]
    async fn a_json_body_with_a_bearer_token() {
        let (url, seen) = gateway(Some(201), "").await;
        let mut c = config(
            &url,
            BodyTemplate::Json(
                serde_json::json!({ "to": ["{phone}"], "body": "{text}", "flash": false }),
            ),
        );
        c.auth = HttpAuth::Bearer(Secret::new("tok"));
        c.success_status = vec![201];
        let delivery = HttpSms::new(&c).unwrap().send(&message()).await.unwrap();
        assert_eq!(delivery.provider, "http 201");

        let seen = seen.await.unwrap();
        assert_eq!(seen.header("authorization"), Some("Bearer tok"));
        assert_eq!(seen.header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "to": ["+46701234567"], "body": "Din engångskod är K7PM3Q", "flash": false })
        );
    }

    #[tokio::test]
    async fn a_refusal_is_rejected_with_a_clean_snippet() {
        let (url, _seen) = gateway(Some(500), "oops:\n cannot send K7PM3Q to +46701234567").await;
        let c = config(
            &url,
            BodyTemplate::Form(pairs(&[("to", "{phone}"), ("m", "{text}")])),
        );
        let err = HttpSms::new(&c)
            .unwrap()
            .send(&message())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            NotifyError::Rejected {
                status: 500,
                body_snippet: "oops: cannot send [redacted] to [redacted]".into()
            }
        );
    }

    #[tokio::test]
    async fn a_status_outside_success_status_is_rejected() {
        let (url, _seen) = gateway(Some(200), "queued").await;
        let mut c = config(
            &url,
            BodyTemplate::Form(pairs(&[("to", "{phone}"), ("m", "{text}")])),
        );
        c.success_status = vec![202];
        let err = HttpSms::new(&c)
            .unwrap()
            .send(&message())
            .await
            .unwrap_err();
        assert!(
            matches!(err, NotifyError::Rejected { status: 200, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_gateway_times_out_on_time() {
        let (url, _seen) = gateway(None, "").await;
        let c = config(
            &url,
            BodyTemplate::Form(pairs(&[("to", "{phone}"), ("m", "{text}")])),
        );
        let sms = HttpSms::new(&c).unwrap();
        let start = Instant::now();
        let err = sms.send(&message()).await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(err, NotifyError::Timeout);
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/send?to=x", listener.local_addr().unwrap());
        drop(listener);
        let c = config(
            &url,
            BodyTemplate::Form(pairs(&[("to", "{phone}"), ("m", "{text}")])),
        );
        let err = HttpSms::new(&c)
            .unwrap()
            .send(&message())
            .await
            .unwrap_err();
        let NotifyError::Transport(text) = err else {
            panic!("transport error expected, got {err:?}")
        };
        assert!(!text.contains("to=x"), "URL leaked: {text}");
    }
}
