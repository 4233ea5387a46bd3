//! Built-in templates (minijinja files under `templates/`, compiled once per container) and
//! custom content. Templates produce a plain-text [`Message`]; each channel escapes it for its
//! own format, so a template author never has to think about escaping.
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{context, Environment, UndefinedBehavior};
use notify_domain::event::SectionEvent;
use notify_domain::{Content, Message, RecipientRole, TemplateId};

/// Comments are quoted up to this many characters.
pub const COMMENT_EXCERPT_CHARS: usize = 280;

const SOURCES: [(TemplateId, &str); 5] = [
    (
        TemplateId::DailySummary,
        include_str!("../templates/en/daily_summary.txt"),
    ),
    (
        TemplateId::RemovedFromSection,
        include_str!("../templates/en/removed_from_section.txt"),
    ),
    (
        TemplateId::SectionCommented,
        include_str!("../templates/en/section_commented.txt"),
    ),
    (
        TemplateId::SectionSubscribed,
        include_str!("../templates/en/section_subscribed.txt"),
    ),
    (
        TemplateId::SectionUpdated,
        include_str!("../templates/en/section_updated.txt"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template} needs a section event, and this delivery has none")]
    MissingEvent { template: &'static str },
    #[error("template {template} failed to render: {source}")]
    Template {
        template: &'static str,
        #[source]
        source: minijinja::Error,
    },
}

/// What a message is rendered from.
#[derive(Debug, Clone, Copy)]
pub enum RenderInput<'a> {
    Event {
        event: &'a SectionEvent,
        role: RecipientRole,
    },
    Schedule {
        slot: DateTime<Utc>,
        timezone: Tz,
    },
}

pub struct Templates {
    env: Environment<'static>,
    web_base: url::Url,
}

impl Templates {
    /// Compiles every template. Fails only if a template in the repo is broken (a unit test
    /// compiles them all).
    pub fn load(web_base: url::Url) -> Result<Templates, minijinja::Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Output is plain text; channels escape it for their formats.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        for (id, source) in SOURCES {
            env.add_template(id.as_str(), source)?;
        }
        Ok(Templates { env, web_base })
    }

    /// `{web_base}/section/detail/{id}` with `?comment_id=` for comments.
    pub fn section_link(&self, section_id: &str, comment_id: Option<&str>) -> String {
        let mut url = self.web_base.clone();
        url.path_segments_mut()
            .map(|mut p| {
                p.pop_if_empty().extend(["section", "detail", section_id]);
            })
            .ok();
        if let Some(comment) = comment_id {
            url.query_pairs_mut().append_pair("comment_id", comment);
        }
        url.into()
    }

    pub fn app_link(&self) -> String {
        self.web_base.to_string()
    }

    pub fn render(
        &self,
        content: &Content,
        input: RenderInput<'_>,
    ) -> Result<Message, RenderError> {
        match content {
            // Custom content is static: used as typed, never evaluated.
            Content::Custom {
                title,
                body,
                link,
                cover_url,
            } => Ok(Message {
                title: title.clone(),
                body: body.clone(),
                link: link.clone(),
                link_label: link.as_ref().map(|_| "Open".to_string()),
                cover_url: cover_url.clone(),
            }),
            Content::Template { template } => self.render_template(*template, input),
        }
    }

    fn render_template(
        &self,
        id: TemplateId,
        input: RenderInput<'_>,
    ) -> Result<Message, RenderError> {
        let name = id.as_str();
        let wrap = |source| RenderError::Template {
            template: name,
            source,
        };
        let (ctx, link, cover) = match input {
            RenderInput::Event { event, role } => {
                let role_phrase = match role {
                    RecipientRole::Creator => "a section you created",
                    RecipientRole::Member => "a section you take part in",
                    RecipientRole::Subscriber => "a section you subscribe to",
                };
                let comment_excerpt = event
                    .comment
                    .as_ref()
                    .map(|c| shorten(&c.text, COMMENT_EXCERPT_CHARS));
                let link = if id == TemplateId::RemovedFromSection {
                    self.app_link()
                } else {
                    self.section_link(
                        &event.section.id,
                        event.comment.as_ref().map(|c| c.id.as_str()),
                    )
                };
                let ctx = context! {
                    section => event.section,
                    actor => event.actor,
                    actor_name => event.actor.as_ref().map_or("Someone", |a| a.name.as_str()),
                    comment_excerpt => comment_excerpt,
                    role_phrase => role_phrase,
                };
                (ctx, link, event.section.cover_url.clone())
            }
            RenderInput::Schedule { slot, timezone } => {
                if id.event().is_some() {
                    return Err(RenderError::MissingEvent { template: name });
                }
                let date = slot.with_timezone(&timezone).format("%Y-%m-%d").to_string();
                let ctx = context! { date => date, summary => Option::<String>::None };
                (ctx, self.app_link(), None)
            }
        };
        let template = self.env.get_template(name).map_err(wrap)?;
        let mut captured = template.render_captured(ctx).map_err(wrap)?;
        let (title, body, link_label) = captured
            .with_state_mut(|state| -> Result<_, minijinja::Error> {
                Ok((
                    state.render_block("title")?,
                    state.render_block("body")?,
                    state.render_block("link_label")?,
                ))
            })
            .map_err(wrap)?;
        Ok(Message {
            title: title.trim().to_string(),
            body: body.trim().to_string(),
            link: Some(link),
            link_label: Some(link_label.trim().to_string()),
            cover_url: cover,
        })
    }
}

/// Shortens to at most `max` characters on a character boundary, with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_domain::event::{Actor, CommentRef, SectionRef};
    use notify_domain::SectionEventName;

    fn templates() -> Templates {
        Templates::load("https://app.example/".parse().unwrap()).unwrap()
    }

    fn commented() -> SectionEvent {
        SectionEvent {
            name: SectionEventName::SectionCommented,
            event_id: "e1".into(),
            occurred_at: None,
            section: SectionRef {
                id: "42".into(),
                title: "Rust <tips>".into(),
                cover_url: None,
            },
            actor: Some(Actor {
                id: "u2".into(),
                name: "Ann".into(),
            }),
            comment: Some(CommentRef {
                id: "c 7".into(),
                text: "Great {{ 7*7 }} post".into(),
            }),
            recipients: vec![],
        }
    }

    #[test]
    fn commented_template_is_role_aware_and_links_to_the_comment() {
        let event = commented();
        let msg = templates()
            .render(
                &Content::Template {
                    template: TemplateId::SectionCommented,
                },
                RenderInput::Event {
                    event: &event,
                    role: RecipientRole::Member,
                },
            )
            .unwrap();
        assert_eq!(msg.title, "New comment on “Rust <tips>”");
        // Event text is data, never template code: `{{ 7*7 }}` stays literal.
        assert_eq!(
            msg.body,
            "Ann commented on a section you take part in, “Rust <tips>”:\n\n“Great {{ 7*7 }} post”"
        );
        assert_eq!(
            msg.link.as_deref(),
            Some("https://app.example/section/detail/42?comment_id=c+7")
        );
        assert_eq!(msg.link_label.as_deref(), Some("View comment"));
    }

    #[test]
    fn every_template_renders() {
        let t = templates();
        let event = commented();
        for id in TemplateId::ALL {
            let input = match id.event() {
                Some(_) => RenderInput::Event {
                    event: &event,
                    role: RecipientRole::Creator,
                },
                None => RenderInput::Schedule {
                    slot: "2026-03-01T23:30:00Z".parse().unwrap(),
                    timezone: chrono_tz::Asia::Shanghai,
                },
            };
            let msg = t
                .render(&Content::Template { template: id }, input)
                .unwrap();
            assert!(!msg.title.is_empty() && !msg.body.is_empty(), "{id:?}");
        }
    }

    #[test]
    fn daily_summary_uses_the_users_date() {
        // 23:30Z on 1 March is already 2 March in Shanghai (UTC+8).
        let msg = templates()
            .render(
                &Content::Template {
                    template: TemplateId::DailySummary,
                },
                RenderInput::Schedule {
                    slot: "2026-03-01T23:30:00Z".parse().unwrap(),
                    timezone: chrono_tz::Asia::Shanghai,
                },
            )
            .unwrap();
        assert_eq!(msg.title, "Daily Summary for 2026-03-02");
    }

    #[test]
    fn custom_content_is_never_evaluated() {
        let msg = templates()
            .render(
                &Content::Custom {
                    title: "{{ 1+1 }}".into(),
                    body: "{% if true %}x{% endif %}".into(),
                    link: None,
                    cover_url: None,
                },
                RenderInput::Schedule {
                    slot: Utc::now(),
                    timezone: chrono_tz::UTC,
                },
            )
            .unwrap();
        assert_eq!(
            (msg.title.as_str(), msg.body.as_str()),
            ("{{ 1+1 }}", "{% if true %}x{% endif %}")
        );
    }

    #[test]
    fn shorten_counts_characters() {
        assert_eq!(shorten("通知通知", 3), "通知…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
