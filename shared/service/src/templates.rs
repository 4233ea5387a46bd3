//! Built-in templates (minijinja files under `templates/`, compiled once per container) and
//! custom content. Templates produce a plain-text [`Message`]; each channel escapes it for its
//! own format, so a template author never has to think about escaping.
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{context, Environment, UndefinedBehavior};
use notify_domain::event::SectionEvent;
use notify_domain::{
    ActivityItem, Content, Language, Message, RecipientRole, SectionEventName, TemplateId,
};

/// Comments are quoted up to this many characters.
pub const COMMENT_EXCERPT_CHARS: usize = 280;
/// The Daily Summary lists at most this many recent items and sections.
pub const SUMMARY_ITEMS: usize = 10;

/// Every template file, by name (`{language}/{template}.txt`), compiled into the binary.
macro_rules! template_files {
    ($($lang:literal),*) => {
        &[$(
            concat!($lang, "/_phrases.txt"),
            concat!($lang, "/daily_summary.txt"),
            concat!($lang, "/removed_from_section.txt"),
            concat!($lang, "/section_commented.txt"),
            concat!($lang, "/section_subscribed.txt"),
            concat!($lang, "/section_updated.txt"),
        )*]
    };
}
macro_rules! template_sources {
    ($($lang:literal),*) => {
        &[$(
            include_str!(concat!("../templates/", $lang, "/_phrases.txt")),
            include_str!(concat!("../templates/", $lang, "/daily_summary.txt")),
            include_str!(concat!("../templates/", $lang, "/removed_from_section.txt")),
            include_str!(concat!("../templates/", $lang, "/section_commented.txt")),
            include_str!(concat!("../templates/", $lang, "/section_subscribed.txt")),
            include_str!(concat!("../templates/", $lang, "/section_updated.txt")),
        )*]
    };
}
const NAMES: &[&str] = template_files!("en", "zh-CN");
const SOURCES: &[&str] = template_sources!("en", "zh-CN");

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

/// What the Daily Summary is made of.
#[derive(Debug, Clone, Default)]
pub struct DailySummaryData {
    /// The upstream app's own summary for the day, if it published one.
    pub published: Option<String>,
    /// Section events the user was told about in the summarised period, newest first.
    pub activity: Vec<ActivityItem>,
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
        summary: Option<&'a DailySummaryData>,
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
        for (name, source) in NAMES.iter().zip(SOURCES.iter()) {
            env.add_template(name, source)?;
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
        language: Language,
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
                link_label: link.as_ref().map(|_| {
                    match language {
                        Language::En => "Open",
                        Language::ZhCn => "打开",
                    }
                    .to_string()
                }),
                cover_url: cover_url.clone(),
            }),
            Content::Template { template } => self.render_template(*template, language, input),
        }
    }

    fn render_template(
        &self,
        id: TemplateId,
        language: Language,
        input: RenderInput<'_>,
    ) -> Result<Message, RenderError> {
        let name = id.as_str();
        let wrap = |source| RenderError::Template {
            template: name,
            source,
        };
        let (ctx, link, cover) = match input {
            RenderInput::Event { event, role } => {
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
                    comment_excerpt => comment_excerpt,
                    role => role,
                };
                (ctx, link, event.section.cover_url.clone())
            }
            RenderInput::Schedule {
                slot,
                timezone,
                summary,
            } => {
                if id.event().is_some() {
                    return Err(RenderError::MissingEvent { template: name });
                }
                let date = slot.with_timezone(&timezone).format("%Y-%m-%d").to_string();
                let empty = DailySummaryData::default();
                let data = summary.unwrap_or(&empty);
                let ctx = context! {
                    date => date,
                    published => data.published,
                    activity => activity_context(&data.activity, timezone),
                };
                (ctx, self.app_link(), None)
            }
        };
        let template = self
            .env
            .get_template(&format!("{}/{name}.txt", language.code()))
            .map_err(wrap)?;
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

/// Counts per event type and per section, and the most recent items, for the template.
fn activity_context(items: &[ActivityItem], timezone: Tz) -> minijinja::Value {
    let by_event: Vec<minijinja::Value> = SectionEventName::ALL
        .iter()
        .map(|e| (e, items.iter().filter(|i| i.event == *e).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(e, n)| context! { event => e.as_str(), count => n })
        .collect();
    let mut sections: Vec<(&str, &str, usize)> = Vec::new();
    for item in items {
        match sections
            .iter_mut()
            .find(|(id, _, _)| *id == item.section_id)
        {
            Some(entry) => entry.2 += 1,
            None => sections.push((&item.section_id, &item.section_title, 1)),
        }
    }
    sections.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(b.1)));
    let by_section: Vec<minijinja::Value> = sections
        .iter()
        .take(SUMMARY_ITEMS)
        .map(|(_, title, count)| context! { title => title, count => count })
        .collect();
    let recent: Vec<minijinja::Value> = items
        .iter()
        .take(SUMMARY_ITEMS)
        .map(|i| {
            context! {
                // Month and day too: the 24 hours usually span two local dates.
                time => i.at.with_timezone(&timezone).format("%m-%d %H:%M").to_string(),
                event => i.event.as_str(),
                actor => i.actor,
                section_title => i.section_title,
                link => i.link,
            }
        })
        .collect();
    context! { total => items.len(), by_event => by_event, by_section => by_section, recent => recent }
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

    fn schedule(summary: Option<&DailySummaryData>) -> RenderInput<'_> {
        RenderInput::Schedule {
            slot: "2026-03-01T23:30:00Z".parse().unwrap(),
            timezone: chrono_tz::Asia::Shanghai,
            summary,
        }
    }

    fn template(id: TemplateId) -> Content {
        Content::Template { template: id }
    }

    #[test]
    fn commented_template_is_role_aware_and_links_to_the_comment() {
        let event = commented();
        let input = RenderInput::Event {
            event: &event,
            role: RecipientRole::Member,
        };
        let msg = templates()
            .render(&template(TemplateId::SectionCommented), Language::En, input)
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
    fn chinese_wording_is_role_aware() {
        let event = commented();
        let input = RenderInput::Event {
            event: &event,
            role: RecipientRole::Subscriber,
        };
        let msg = templates()
            .render(
                &template(TemplateId::SectionCommented),
                Language::ZhCn,
                input,
            )
            .unwrap();
        assert_eq!(msg.title, "“Rust <tips>”有新评论");
        assert_eq!(
            msg.body,
            "Ann 评论了你订阅的专栏“Rust <tips>”：\n\n“Great {{ 7*7 }} post”"
        );
        assert_eq!(msg.link_label.as_deref(), Some("查看评论"));
    }

    #[test]
    fn every_template_renders_in_every_language() {
        let t = templates();
        let event = commented();
        for language in Language::ALL {
            for id in TemplateId::ALL {
                let input = match id.event() {
                    Some(_) => RenderInput::Event {
                        event: &event,
                        role: RecipientRole::Creator,
                    },
                    None => schedule(None),
                };
                let msg = t.render(&template(id), language, input).unwrap();
                assert!(
                    !msg.title.is_empty() && !msg.body.is_empty(),
                    "{id:?} {language:?}"
                );
            }
        }
    }

    #[test]
    fn daily_summary_uses_the_users_date() {
        // 23:30Z on 1 March is already 2 March in Shanghai (UTC+8).
        let msg = templates()
            .render(
                &template(TemplateId::DailySummary),
                Language::En,
                schedule(None),
            )
            .unwrap();
        assert_eq!(msg.title, "Daily Summary for 2026-03-02");
        assert_eq!(msg.body, "Nothing new today. Enjoy the quiet!");
    }

    fn item(
        event: SectionEventName,
        section: &str,
        title: &str,
        actor: &str,
        at: &str,
    ) -> ActivityItem {
        ActivityItem {
            user_id: "u".into(),
            event,
            event_id: format!("{section}-{at}"),
            section_id: section.into(),
            section_title: title.into(),
            actor: Some(Actor {
                id: actor.to_lowercase(),
                name: actor.into(),
            }),
            link: format!("https://app.example/section/detail/{section}"),
            at: at.parse().unwrap(),
        }
    }

    #[test]
    fn daily_summary_counts_and_lists_the_day() {
        let data = DailySummaryData {
            published: Some("You read 3 documents yesterday.".into()),
            activity: vec![
                item(
                    SectionEventName::SectionCommented,
                    "s1",
                    "Rust",
                    "Ann",
                    "2026-03-01T22:05:00Z",
                ),
                item(
                    SectionEventName::SectionUpdated,
                    "s2",
                    "Go",
                    "Bo",
                    "2026-03-01T10:00:00Z",
                ),
                item(
                    SectionEventName::SectionCommented,
                    "s1",
                    "Rust",
                    "Cy",
                    "2026-03-01T09:30:00Z",
                ),
            ],
        };
        let t = templates();
        let render = |language| {
            t.render(
                &template(TemplateId::DailySummary),
                language,
                schedule(Some(&data)),
            )
            .unwrap()
        };
        // Times are Shanghai local (UTC+8): 1 Mar 22:05Z → 2 Mar 06:05, 10:00Z → 1 Mar 18:00,
        // 09:30Z → 1 Mar 17:30.
        assert_eq!(
            render(Language::En).body,
            "You read 3 documents yesterday.\n\n\
In the last 24 hours: 2 comments, 1 update.\n\n\
• Rust: 2 notifications\n\
• Go: 1 notification\n\n\
Latest:\n\
• 03-02 06:05 Ann commented on “Rust” — https://app.example/section/detail/s1\n\
• 03-01 18:00 Bo updated “Go” — https://app.example/section/detail/s2\n\
• 03-01 17:30 Cy commented on “Rust” — https://app.example/section/detail/s1"
        );
        let zh = render(Language::ZhCn);
        assert_eq!(zh.title, "2026-03-02 每日摘要");
        assert!(
            zh.body.contains("过去 24 小时：2 条评论，1 次更新。"),
            "{}",
            zh.body
        );
        assert!(zh.body.contains("• Rust：2 条通知"), "{}", zh.body);
    }

    #[test]
    fn custom_content_is_never_evaluated() {
        let custom = Content::Custom {
            title: "{{ 1+1 }}".into(),
            body: "{% if true %}x{% endif %}".into(),
            link: None,
            cover_url: None,
        };
        let msg = templates()
            .render(&custom, Language::En, schedule(None))
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
