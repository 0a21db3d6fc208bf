//! Page templates and language files: read from the configured `html/`
//! directory at (re)load time, falling back to copies built into the binary
//! so `portvakt demo` needs no files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{context, Environment, Value};

use crate::config::model::Branding;
use crate::config::types::Lang;
use crate::config::{Config, Problem};

/// Files built into the binary, by path under `html/`.
const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../../html/base.html")),
    ("login.html", include_str!("../../html/login.html")),
    ("message.html", include_str!("../../html/message.html")),
    ("logout.html", include_str!("../../html/logout.html")),
    ("portal.html", include_str!("../../html/portal.html")),
    ("theme.css", include_str!("../../html/theme.css")),
    (
        "static/portvakt.css",
        include_str!("../../html/static/portvakt.css"),
    ),
    (
        "static/logo.svg",
        include_str!("../../html/static/logo.svg"),
    ),
    ("lang/sv.yaml", include_str!("../../html/lang/sv.yaml")),
    ("lang/en.yaml", include_str!("../../html/lang/en.yaml")),
    ("second.html", include_str!("../../html/second.html")),
    ("code.html", include_str!("../../html/code.html")),
    ("passkey.html", include_str!("../../html/passkey.html")),
    (
        "sms/code.sv.txt",
        include_str!("../../html/sms/code.sv.txt"),
    ),
    (
        "sms/code.en.txt",
        include_str!("../../html/sms/code.en.txt"),
    ),
    (
        "email/code.sv.txt",
        include_str!("../../html/email/code.sv.txt"),
    ),
    (
        "email/code.en.txt",
        include_str!("../../html/email/code.en.txt"),
    ),
    (
        "email/code.sv.html",
        include_str!("../../html/email/code.sv.html"),
    ),
    (
        "email/code.en.html",
        include_str!("../../html/email/code.en.html"),
    ),
    (
        "email/notice.sv.txt",
        include_str!("../../html/email/notice.sv.txt"),
    ),
    (
        "email/notice.en.txt",
        include_str!("../../html/email/notice.en.txt"),
    ),
    (
        "email/notice.sv.html",
        include_str!("../../html/email/notice.sv.html"),
    ),
    (
        "email/notice.en.html",
        include_str!("../../html/email/notice.en.html"),
    ),
    ("reauth.html", include_str!("../../html/reauth.html")),
    ("sms.html", include_str!("../../html/sms.html")),
    (
        "sms_confirm.html",
        include_str!("../../html/sms_confirm.html"),
    ),
    ("settings.html", include_str!("../../html/settings.html")),
    (
        "authenticator.html",
        include_str!("../../html/authenticator.html"),
    ),
    ("landing.html", include_str!("../../html/landing.html")),
];

/// Templates, strings and static assets for one configuration.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
    strings: BTreeMap<Lang, BTreeMap<String, String>>,
    brand: BTreeMap<Lang, Value>,
    default_lang: Lang,
    /// `portvakt.css`.
    pub css: Arc<[u8]>,
    /// Rendered `theme.css` (branding colours).
    pub theme_css: Arc<[u8]>,
    /// Logo bytes and content type.
    pub logo: (Arc<[u8]>, &'static str),
}

fn read(dir: Option<&Path>, name: &str) -> Result<String, String> {
    if let Some(dir) = dir {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| (*text).to_owned())
        .ok_or_else(|| format!("no template {name}"))
}

impl Pages {
    /// Load templates and strings for `config`; problems point at the
    /// template file that is wrong.
    pub fn load(config: &Config) -> Result<Pages, Problem> {
        let dir = config.templates_dir.clone();
        let problem = |file: &str, msg: String| {
            let path = dir
                .as_deref()
                .map(|d| d.join(file))
                .unwrap_or_else(|| PathBuf::from(file));
            Problem::new(&path, None, "", msg)
        };

        let mut env = Environment::new();
        // Autoescape .html (the default rule); CSS is rendered without.
        let loader_dir = dir.clone();
        env.set_loader(move |name| {
            read(loader_dir.as_deref(), name)
                .map(Some)
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::TemplateNotFound, e))
        });
        // Optional context values (`error`, `notice`, `link`) may be absent.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        // Every template must parse at load time, so a broken file is refused by
        // check-config and by a reload instead of failing on first use.
        let templates = EMBEDDED
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !n.starts_with("lang/") && !n.starts_with("static/"));
        for name in templates {
            env.get_template(name)
                .map_err(|e| problem(name, format!("template error: {e:#}")))?;
        }

        let mut strings = BTreeMap::new();
        for lang in Lang::ALL {
            let file = format!("lang/{}.yaml", lang.code());
            let text = read(dir.as_deref(), &file).map_err(|e| problem(&file, e))?;
            let map: BTreeMap<String, String> =
                serde_norway::from_str(&text).map_err(|e| problem(&file, e.to_string()))?;
            strings.insert(lang, map);
        }
        // Every language must have the keys Swedish has, so no page shows a gap.
        let sv_keys: Vec<&String> = strings[&Lang::Sv].keys().collect();
        for lang in Lang::ALL {
            if let Some(missing) = sv_keys.iter().find(|k| !strings[&lang].contains_key(**k)) {
                return Err(problem(
                    &format!("lang/{}.yaml", lang.code()),
                    format!("missing key {missing}"),
                ));
            }
        }
        let idle_minutes = (config.idle_timeout.as_secs() / 60).max(1).to_string();
        for map in strings.values_mut() {
            if let Some(v) = map.get_mut("idle_notice") {
                *v = v.replace("{minutes}", &idle_minutes);
            }
        }

        let b = &config.branding;
        let brand: BTreeMap<Lang, Value> = Lang::ALL
            .into_iter()
            .map(|lang| (lang, brand_value(b, lang)))
            .collect();
        let theme_css = env
            .get_template("theme.css")
            .and_then(|t| t.render(context! { brand => brand[&config.default_lang].clone() }))
            .map_err(|e| problem("theme.css", format!("template error: {e:#}")))?;
        let css = read(dir.as_deref(), "static/portvakt.css")
            .map_err(|e| problem("static/portvakt.css", e))?;
        let logo = match &b.logo {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    Problem::new(
                        &config.source,
                        None,
                        "branding.logo",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                (Arc::from(bytes), logo_type(path))
            }
            None => {
                let svg = read(dir.as_deref(), "static/logo.svg")
                    .map_err(|e| problem("static/logo.svg", e))?;
                (Arc::from(svg.into_bytes()), "image/svg+xml")
            }
        };
        Ok(Pages {
            env,
            strings,
            brand,
            default_lang: config.default_lang,
            css: Arc::from(css.into_bytes()),
            theme_css: Arc::from(theme_css.into_bytes()),
            logo,
        })
    }

    /// The best language for an `Accept-Language` header.
    pub fn lang(&self, accept_language: Option<&str>) -> Lang {
        let Some(header) = accept_language else {
            return self.default_lang;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(lang) = Lang::from_code(primary) {
                if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, lang));
                }
            }
        }
        best.map(|(_, l)| l).unwrap_or(self.default_lang)
    }

    /// A string from the language file (the key itself if missing).
    pub fn t<'a>(&'a self, lang: Lang, key: &'a str) -> &'a str {
        self.strings
            .get(&lang)
            .and_then(|m| m.get(key))
            .map(String::as_str)
            .unwrap_or(key)
    }

    /// Render a message template (SMS, e-mail) with only `ctx`.
    pub fn render_text(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    /// Render template `name` with the common context plus `ctx`.
    pub fn render(&self, name: &str, lang: Lang, request_id: &str, ctx: Value) -> String {
        let common = context! {
            lang => lang.code(),
            t => Value::from_serialize(&self.strings[&lang]),
            asset_base => super::ASSET_BASE,
            brand => self.brand[&lang].clone(),
            request_id => request_id,
        };
        let result = self
            .env
            .get_template(name)
            .and_then(|t| t.render(context! { ..ctx, ..common }));
        match result {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template = name, error = %format!("{e:#}"), "template failed to render");
                format!(
                    "<!doctype html><title>portvakt</title><p>{}</p><p>{request_id}</p>",
                    self.t(lang, "unavailable_text")
                )
            }
        }
    }
}

fn brand_value(b: &Branding, lang: Lang) -> Value {
    context! {
        title => b.title.get(lang),
        organisation => b.organisation.as_str(),
        support => b.support.as_ref().map(|s| s.get(lang)).unwrap_or(""),
        has_logo => true,
        primary => b.primary.as_str(),
        background => b.background.as_str(),
        on_primary => b.on_primary.as_str(),
    }
}

fn logo_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => "image/svg+xml",
    }
}
