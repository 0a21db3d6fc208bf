//! A browser-like client: trusts only the test CA, keeps cookies, does not
//! follow redirects by itself (tests look at every hop), reaches the gateway
//! under every test host name.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, Url};

use super::page::Page;
use super::pki::{MAIN_HOSTS, SECOND_HOST, UPSTREAM_HOST};
use super::users::User;

/// What a browser sends unless a test says otherwise.
pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
pub const USER_AGENT: &str = "Mozilla/5.0 (portvakt integration tests)";

/// How to build a [`Client`].
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    source_ip: Option<IpAddr>,
    http2: bool,
    tls_info: bool,
    headers: Vec<(String, String)>,
    jar: Option<Arc<Jar>>,
}

impl ClientOptions {
    /// Bind the client's source address (e.g. 127.0.0.2: off-network).
    pub fn source_ip(mut self, ip: IpAddr) -> ClientOptions {
        self.source_ip = Some(ip);
        self
    }

    /// Offer h2 and http/1.1 by ALPN (default: HTTP/1.1 only).
    pub fn http2(mut self) -> ClientOptions {
        self.http2 = true;
        self
    }

    /// Keep the server certificate of each response ([`Page::peer_cert`]).
    pub fn tls_info(mut self) -> ClientOptions {
        self.tls_info = true;
        self
    }

    /// Send this header with every request.
    pub fn header(mut self, name: &str, value: &str) -> ClientOptions {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Keep cookies in this jar (e.g. [`Client::jar`] of another client: one
    /// browser that moves from the office network to a café).
    pub fn cookie_jar(mut self, jar: Arc<Jar>) -> ClientOptions {
        self.jar = Some(jar);
        self
    }
}

/// A redirect chain: every redirect response in order, then the final one.
#[derive(Debug)]
pub struct Journey {
    pub hops: Vec<Page>,
    pub end: Page,
}

impl Journey {
    /// Every Location on the way, resolved.
    pub fn locations(&self) -> Vec<Url> {
        self.hops.iter().filter_map(|p| p.location()).collect()
    }

    pub fn describe(&self) -> String {
        let mut out = String::new();
        for h in &self.hops {
            out.push_str(&format!(
                "  {} {} -> {:?}\n",
                h.status,
                h.url,
                h.raw_location()
            ));
        }
        out.push_str(&format!("  end: {}", self.end.describe()));
        out
    }
}

/// The login form as a browser sees it.
#[derive(Debug)]
pub struct LoginForm {
    pub csrf: String,
    /// The hidden return address, if the form has one.
    pub rd: Option<String>,
    /// Where the form posts to: `/.portvakt/login` on the host that showed it.
    pub action: Url,
    /// How we got there from the first URL.
    pub journey: Journey,
}

/// See the module documentation.
pub struct Client {
    http: reqwest::Client,
    jar: Arc<Jar>,
}

/// Every host name the client sends to the gateway.
pub fn test_hosts() -> Vec<&'static str> {
    let mut hosts: Vec<&str> = MAIN_HOSTS
        .iter()
        .copied()
        .filter(|h| h.ends_with(".test"))
        .collect();
    hosts.push(SECOND_HOST);
    hosts.push(UPSTREAM_HOST);
    hosts
}

impl Client {
    pub fn new(gateway: SocketAddr, ca_pem: &str, options: ClientOptions) -> Client {
        let jar = options.jar.clone().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static(BROWSER_ACCEPT));
        for (name, value) in &options.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("test CA");
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .tls_info(options.tls_info);
        for host in test_hosts() {
            builder = builder.resolve(host, gateway);
        }
        if let Some(ip) = options.source_ip {
            builder = builder.local_address(ip);
        }
        if !options.http2 {
            builder = builder.http1_only();
        }
        Client {
            http: builder.build().expect("build reqwest client"),
            jar,
        }
    }

    /// This client's cookie jar, to share with another client.
    pub fn jar(&self) -> Arc<Jar> {
        self.jar.clone()
    }

    /// The reqwest client, for what the helpers do not cover.
    pub fn raw(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Send and read the whole response.
    pub async fn send(&self, request: RequestBuilder) -> Page {
        let request = request.build().expect("build request");
        let what = format!("{} {}", request.method(), request.url());
        let resp = self
            .http
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("{what} failed: {e:?}"));
        Page::read(resp).await
    }

    pub async fn get(&self, url: &str) -> Page {
        self.send(self.http.get(url)).await
    }

    /// GET with extra headers.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut rb = self.http.get(url);
        for (n, v) in headers {
            rb = rb.header(*n, *v);
        }
        self.send(rb).await
    }

    /// POST an `application/x-www-form-urlencoded` form.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.http.post(url).form(fields)).await
    }

    /// GET `url` and follow redirects by hand (at most 10 hops).
    pub async fn follow(&self, url: &str) -> Journey {
        self.follow_with(url, &[]).await
    }

    /// Like [`Client::follow`], sending `headers` on every hop.
    pub async fn follow_with(&self, url: &str, headers: &[(&str, &str)]) -> Journey {
        let first = self.get_with(url, headers).await;
        self.follow_from_with(first, headers).await
    }

    /// Follow the redirects that start with `first` (e.g. a POST's 303).
    pub async fn follow_from(&self, first: Page) -> Journey {
        self.follow_from_with(first, &[]).await
    }

    async fn follow_from_with(&self, first: Page, headers: &[(&str, &str)]) -> Journey {
        let mut hops = Vec::new();
        let mut current = first;
        for _ in 0..10 {
            if !current.is_redirect() {
                return Journey { hops, end: current };
            }
            let next = current
                .location()
                .unwrap_or_else(|| panic!("redirect without Location: {}", current.describe()));
            // Never leave loopback: a Location naming any other host ends the
            // journey there, for the test to judge.
            let known = next.host_str().is_some_and(|h| test_hosts().contains(&h));
            if !known || next.scheme() != "https" && next.scheme() != "http" {
                return Journey { hops, end: current };
            }
            let page = self.get_with(next.as_str(), headers).await;
            hops.push(std::mem::replace(&mut current, page));
        }
        panic!(
            "more than 10 redirects:\n{}",
            Journey { hops, end: current }.describe()
        );
    }

    /// Start at `url` and follow redirects until a page with a login form
    /// (a `csrf` input) shows; panics if none does.
    pub async fn open_login_form(&self, url: &str) -> LoginForm {
        let journey = self.follow(url).await;
        let page = &journey.end;
        let csrf = page.input_value("csrf").unwrap_or_else(|| {
            panic!(
                "no login form (csrf input) after {url}:\n{}",
                journey.describe()
            )
        });
        let rd = page.input_value("rd");
        let mut action = page.url.clone();
        action.set_path("/.portvakt/login");
        action.set_query(None);
        LoginForm {
            csrf,
            rd,
            action,
            journey,
        }
    }

    /// POST the login form with these credentials; the response is not followed.
    pub async fn submit_login(&self, form: &LoginForm, username: &str, password: &str) -> Page {
        let mut fields = vec![
            ("username", username),
            ("password", password),
            ("csrf", form.csrf.as_str()),
        ];
        if let Some(rd) = &form.rd {
            fields.push(("rd", rd.as_str()));
        }
        self.post_form(form.action.as_str(), &fields).await
    }

    /// The whole browser flow: open `url`, get sent to the login form, post
    /// the credentials, follow every redirect to the end.
    pub async fn login_as(&self, url: &str, username: &str, password: &str) -> Journey {
        let form = self.open_login_form(url).await;
        let posted = self.submit_login(&form, username, password).await;
        self.follow_from(posted).await
    }

    pub async fn login(&self, url: &str, user: &User) -> Journey {
        self.login_as(url, user.name, user.password).await
    }

    /// Log in at `url` and insist on arriving at the upstream as `user`.
    pub async fn must_login(&self, url: &str, user: &User) -> super::Whoami {
        self.must_login_as_header(url, user, "remote-user").await
    }

    /// [`Client::must_login`] for a service that names the user header `header`.
    pub async fn must_login_as_header(
        &self,
        url: &str,
        user: &User,
        header: &str,
    ) -> super::Whoami {
        let journey = self.login(url, user).await;
        assert!(
            journey.end.status == 200 && journey.end.is_whoami(),
            "{} could not log in at {url}:\n{}",
            user.name,
            journey.describe()
        );
        let who = journey.end.whoami();
        assert_eq!(
            who.one(header),
            Some(user.name),
            "logged in as someone else"
        );
        who
    }

    /// Value of cookie `name` the client would send to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).expect("cookie url");
        let header = self.jar.cookies(&url)?;
        let header = header.to_str().ok()?.to_string();
        header
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }
}
