//! The deployment, checked offline against the code. `infra/template.yaml` must set every
//! environment variable the functions need (`notify_service::settings::ENV_VARS`), declare every
//! index the code queries (`notify_aws::schema::INDEXES`) with the keys the code writes, and
//! grant each function's role exactly the IAM actions of `notify_aws::permissions` on the
//! resources its configuration points at. The adapters may call no AWS operation that
//! `permissions::SDK_OPERATIONS` does not list. cfn-lint must report nothing.
//!
//! cfn-lint and the IAM action list come from the project's virtualenv: `make venv` (or
//! `make test`) creates it.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use notify_aws::permissions::{self, Grant, Resource, FUNCTIONS, RUNTIME_GRANTS, SDK_OPERATIONS};
use notify_aws::schema;
use notify_domain::event::DAILY_SUMMARY_PUBLISHED;
use notify_domain::SectionEventName;
use notify_service::settings::{self, ENV_VARS};
use notify_testkit::workspace_root;
use serde_yaml_ng::{Mapping, Value};

const TEMPLATE: &str = "infra/template.yaml";

// ---------------------------------------------------------------- reading the template

struct Template {
    root: Value,
}

impl Template {
    fn load() -> Template {
        let path = workspace_root().join(TEMPLATE);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let root = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{TEMPLATE} is not YAML: {e}"));
        Template { root }
    }

    fn resources(&self) -> &Mapping {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .expect("the template has Resources")
    }

    fn resource(&self, id: &str) -> Option<&Value> {
        self.resources().get(id)
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources()
            .iter()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
            .map(|(id, r)| (id.as_str().expect("resource ids are strings"), r))
    }

    fn type_of(&self, id: &str) -> Option<&str> {
        self.resource(id)?.get("Type")?.as_str()
    }

    /// The function resource whose code is `target/lambda/{name}/bootstrap.zip`.
    fn function(&self, name: &str) -> Function<'_> {
        let suffix = format!("target/lambda/{name}/bootstrap.zip");
        let found: Vec<_> = self
            .of_type("AWS::Serverless::Function")
            .filter(|(_, r)| {
                prop(r, "CodeUri")
                    .and_then(Value::as_str)
                    .is_some_and(|uri| uri.ends_with(&suffix))
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one function with CodeUri …/{suffix} in {TEMPLATE}"
        );
        let (id, resource) = found[0];
        // SAM merges Globals.Function.Environment.Variables under the function's own.
        let mut env = BTreeMap::new();
        for vars in [
            self.root
                .get("Globals")
                .and_then(|g| g.get("Function"))
                .and_then(|f| f.get("Environment"))
                .and_then(|e| e.get("Variables")),
            prop(resource, "Environment").and_then(|e| e.get("Variables")),
        ]
        .into_iter()
        .flatten()
        {
            for (k, v) in vars.as_mapping().expect("Variables is a mapping") {
                env.insert(k.as_str().expect("variable names").to_string(), v.clone());
            }
        }
        Function {
            name: name.to_string(),
            id: id.to_string(),
            resource,
            env,
        }
    }
}

struct Function<'a> {
    name: String,
    id: String,
    resource: &'a Value,
    env: BTreeMap<String, Value>,
}

impl Function<'_> {
    /// A variable's value as `Fn::Sub` text; None when unset or set only under a condition.
    fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).and_then(sub_text)
    }
}

fn prop<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    resource.get("Properties")?.get(name)
}

fn tag_name(tag: &serde_yaml_ng::value::Tag) -> String {
    tag.to_string().trim_start_matches('!').to_string()
}

/// An intrinsic function as (name without `Fn::`, argument), in short (`!Ref x`) or long
/// (`{Ref: x}`, `{Fn::GetAtt: …}`) form.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((tag_name(&t.tag), &t.value)),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k.starts_with("Fn::"))
                .then(|| (k.trim_start_matches("Fn::").to_string(), arg))
        }
        _ => None,
    }
}

/// A value as `Fn::Sub` text: `!Ref X` → `${X}`, `!GetAtt X.Arn` → `${X.Arn}`, `!Sub text` →
/// text, a plain string or number → itself. None for anything else (`!If`, lists, …).
fn sub_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => match intrinsic(v)? {
            (name, Value::String(x)) if name == "Ref" => Some(format!("${{{x}}}")),
            (name, Value::String(x)) if name == "GetAtt" => Some(format!("${{{x}}}")),
            (name, Value::Sequence(parts)) if name == "GetAtt" => {
                let parts: Option<Vec<&str>> = parts.iter().map(Value::as_str).collect();
                Some(format!("${{{}}}", parts?.join(".")))
            }
            (name, Value::String(x)) if name == "Sub" => Some(x.clone()),
            _ => None,
        },
    }
}

/// `${X}` → `X` (a plain reference, nothing around it).
fn reference(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains(['$', '{', '}'])).then_some(inner)
}

/// A string or a list of strings (a statement's Action or Resource) as texts.
fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .map(|i| sub_text(i).unwrap_or_else(|| format!("{i:?}")))
            .collect(),
        other => vec![sub_text(other).unwrap_or_else(|| format!("{other:?}"))],
    }
}

/// The logical id `text` refers to (`${X}`), checked to be a resource of type `ty`.
fn resource_ref(
    t: &Template,
    what: &str,
    text: Option<String>,
    ty: &str,
) -> Result<String, String> {
    let text = text.ok_or_else(|| format!("{what} is not set (unconditionally)"))?;
    let id = reference(&text)
        .ok_or_else(|| format!("{what} is {text}, not a reference to a resource"))?;
    match t.type_of(id) {
        Some(actual) if actual == ty => Ok(id.to_string()),
        Some(actual) => Err(format!("{what} refers to {id}, a {actual}, not a {ty}")),
        None => Err(format!("{what} refers to {id}, which is not a resource")),
    }
}

/// What the function's role must name for `resource`, as `Fn::Sub` text, found through the
/// function's own configuration (its variables, event source and log group).
fn expected_resource(t: &Template, f: &Function, resource: Resource) -> Result<String, String> {
    let table = || {
        resource_ref(
            t,
            &format!("the {} function's {}", f.name, settings::TABLE),
            f.var(settings::TABLE),
            "AWS::DynamoDB::Table",
        )
    };
    Ok(match resource {
        Resource::Table => format!("${{{}.Arn}}", table()?),
        Resource::Index(index) => format!("${{{}.Arn}}/index/{index}", table()?),
        Resource::Secrets => {
            let prefix = f.var(settings::SECRET_PREFIX).ok_or_else(|| {
                format!(
                    "the {} function's {} is not set",
                    f.name,
                    settings::SECRET_PREFIX
                )
            })?;
            if !prefix.ends_with('/') {
                return Err(format!(
                    "the {} function's {} ({prefix}) must end with '/'",
                    f.name,
                    settings::SECRET_PREFIX
                ));
            }
            format!(
                "arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{prefix}*"
            )
        }
        Resource::EventsDeadLetterQueue => {
            let queue = resource_ref(
                t,
                &format!("the {} function's {}", f.name, settings::EVENTS_DLQ_URL),
                f.var(settings::EVENTS_DLQ_URL),
                "AWS::SQS::Queue",
            )?;
            format!("${{{queue}.Arn}}")
        }
        Resource::EventsQueue => {
            let sources: Vec<String> = prop(f.resource, "Events")
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
                .filter(|(_, e)| e.get("Type").and_then(Value::as_str) == Some("SQS"))
                .filter_map(|(_, e)| e.get("Properties")?.get("Queue").and_then(sub_text))
                .collect();
            match sources.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(format!(
                        "{} has {} SQS event sources, not one",
                        f.name,
                        sources.len()
                    ))
                }
            }
        }
        Resource::LogGroup => {
            let group = resource_ref(
                t,
                &format!("the {} function's LoggingConfig.LogGroup", f.name),
                prop(f.resource, "LoggingConfig")
                    .and_then(|l| l.get("LogGroup"))
                    .and_then(sub_text),
                "AWS::Logs::LogGroup",
            )?;
            format!("${{{group}.Arn}}")
        }
    })
}

/// The (resource, action) pairs the function's role allows, and problems found on the way.
fn granted(t: &Template, f: &Function) -> (BTreeSet<(String, String)>, Vec<String>) {
    let mut problems = Vec::new();
    let mut pairs = BTreeSet::new();
    if prop(f.resource, "Policies").is_some() {
        problems.push(format!(
            "{}: give permissions through its role, not SAM Policies",
            f.id
        ));
    }
    let role = match resource_ref(
        t,
        &format!("{}'s Role", f.id),
        prop(f.resource, "Role")
            .and_then(sub_text)
            .map(|arn| arn.replace(".Arn}", "}")),
        "AWS::IAM::Role",
    ) {
        Ok(role) => role,
        Err(e) => {
            problems.push(e);
            return (pairs, problems);
        }
    };
    let role_resource = t.resource(&role).expect("checked above");
    if prop(role_resource, "ManagedPolicyArns").is_some() {
        problems.push(format!(
            "{role}: managed policies are not allowed, only inline statements"
        ));
    }
    let statements = prop(role_resource, "Policies")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("PolicyDocument")?.get("Statement"))
        .flat_map(|s| match s {
            Value::Sequence(items) => items.clone(),
            one => vec![one.clone()],
        });
    for statement in statements {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let actions = statement.get("Action").map(texts).unwrap_or_default();
        let resources = statement.get("Resource").map(texts).unwrap_or_default();
        if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
            problems.push(format!("{role}: NotAction/NotResource are not allowed"));
        }
        for action in &actions {
            if action.contains('*') {
                problems.push(format!("{role}: wildcard action {action}"));
            }
            for resource in &resources {
                if resource == "*" {
                    problems.push(format!("{role}: {action} on resource *"));
                }
                pairs.insert((resource.clone(), action.clone()));
            }
        }
    }
    (pairs, problems)
}

fn group_of(grants: &[Grant], resource: Resource, action: &str) -> &'static str {
    grants
        .iter()
        .find(|g| g.resource == resource && g.actions.contains(&action))
        .map_or("?", |g| g.name)
}

fn venv_bin(tool: &str) -> PathBuf {
    let path = workspace_root().join(".venv/bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run `make venv` first (it installs cfn-lint from tests/support/requirements.txt into .venv)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------- the checks

#[test]
fn every_function_gets_every_variable_it_needs() {
    let t = Template::load();
    let known: BTreeSet<&str> = ENV_VARS.iter().map(|(name, _)| *name).collect();
    let mut problems = Vec::new();
    for (name, grants) in FUNCTIONS {
        let f = t.function(name);
        let mut needed: Vec<&str> = ENV_VARS
            .iter()
            .filter(|(_, required)| *required)
            .map(|(name, _)| *name)
            .collect();
        // A function that parks refused events must be told where.
        if grants
            .iter()
            .any(|g| g.resource == Resource::EventsDeadLetterQueue)
        {
            needed.push(settings::EVENTS_DLQ_URL);
        }
        for var in needed {
            if f.var(var).is_none() {
                problems.push(format!(
                    "{} ({}): {var} is not set (unconditionally) in {TEMPLATE}",
                    f.name, f.id
                ));
            }
        }
        for var in f.env.keys() {
            if !known.contains(var.as_str()) {
                problems.push(format!(
                    "{}: {TEMPLATE} sets {var}, which no function reads (not in settings::ENV_VARS)",
                    f.name
                ));
            }
        }
        // Tokens are verified by the HTTP API's JWT authorizer; no signing key in the template.
        if f.env.contains_key(settings::JWT_HS256_KEY) {
            problems.push(format!(
                "{}: {} must not be set in the template",
                f.name,
                settings::JWT_HS256_KEY
            ));
        }
    }
    let functions = t.of_type("AWS::Serverless::Function").count();
    if functions != FUNCTIONS.len() {
        problems.push(format!(
            "{TEMPLATE} has {functions} functions; permissions::FUNCTIONS lists {}",
            FUNCTIONS.len()
        ));
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_table_declares_every_index_the_code_queries() {
    let t = Template::load();
    let tables: Vec<_> = t.of_type("AWS::DynamoDB::Table").collect();
    assert_eq!(tables.len(), 1, "expected one DynamoDB table in {TEMPLATE}");
    let (id, table) = tables[0];
    let mut problems = Vec::new();

    let attribute_types: BTreeMap<String, String> = prop(table, "AttributeDefinitions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some((
                d.get("AttributeName")?.as_str()?.to_string(),
                d.get("AttributeType")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let keys = |schema: Option<&Value>| -> Vec<(String, String)> {
        schema
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|k| {
                Some((
                    k.get("AttributeName")?.as_str()?.to_string(),
                    k.get("KeyType")?.as_str()?.to_string(),
                ))
            })
            .collect()
    };
    // The type of each key attribute as the code writes it (dynamo.rs: `s(…)` or `n(…)`).
    let key_type = |attribute: &str| match attribute {
        a if a == schema::DUE_AT => "N",
        _ => "S",
    };
    let check_keys = |what: &str, actual: Vec<(String, String)>, hash: &str, range: &str| {
        let mut problems = Vec::new();
        let wanted = vec![
            (hash.to_string(), "HASH".to_string()),
            (range.to_string(), "RANGE".to_string()),
        ];
        if actual != wanted {
            problems.push(format!(
                "{id}: {what} keys are {actual:?}; the code uses {wanted:?}"
            ));
        }
        for attribute in [hash, range] {
            match attribute_types.get(attribute) {
                Some(ty) if ty == key_type(attribute) => {}
                other => problems.push(format!(
                    "{id}: attribute {attribute} is declared as {other:?}; the code writes type {}",
                    key_type(attribute)
                )),
            }
        }
        problems
    };
    problems.extend(check_keys(
        "table",
        keys(prop(table, "KeySchema")),
        schema::PK,
        schema::SK,
    ));

    let indexes: BTreeMap<String, &Value> = prop(table, "GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i.get("IndexName")?.as_str()?.to_string(), i)))
        .collect();
    for name in schema::INDEXES {
        // The key attributes each index is queried on (dynamo.rs: tasks_for_event, due_tasks,
        // list_deliveries and unread_count).
        let (hash, range) = match name {
            n if n == schema::EVENT_INDEX => (schema::EVENT_KEY, schema::SK),
            n if n == schema::DUE_INDEX => (schema::DUE_SHARD, schema::DUE_AT),
            n if n == schema::UNREAD_INDEX => (schema::UNREAD_KEY, schema::SK),
            other => panic!("schema::INDEXES has {other}: say here which keys it is queried on"),
        };
        let Some(index) = indexes.get(name) else {
            problems.push(format!(
                "{id}: no global secondary index {name}, which the code queries (schema::INDEXES)"
            ));
            continue;
        };
        problems.extend(check_keys(
            &format!("index {name}"),
            keys(index.get("KeySchema")),
            hash,
            range,
        ));
        // Items (tasks, deliveries) are read whole from the index.
        let projection = index
            .get("Projection")
            .and_then(|p| p.get("ProjectionType"))
            .and_then(Value::as_str);
        if projection != Some("ALL") {
            problems.push(format!(
                "{id}: index {name} projects {projection:?}; the code reads whole items (ALL)"
            ));
        }
    }
    for name in indexes.keys() {
        if !schema::INDEXES.contains(&name.as_str()) {
            problems.push(format!(
                "{id}: index {name} is not queried by the code (not in schema::INDEXES)"
            ));
        }
    }
    let ttl = prop(table, "TimeToLiveSpecification");
    if ttl
        .and_then(|t| t.get("AttributeName"))
        .and_then(Value::as_str)
        != Some(schema::EXPIRES_AT)
        || ttl.and_then(|t| t.get("Enabled")).and_then(Value::as_bool) != Some(true)
    {
        problems.push(format!(
            "{id}: TTL must be enabled on {} (claims and deliveries expire by it)",
            schema::EXPIRES_AT
        ));
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn every_function_is_allowed_exactly_what_its_code_calls() {
    let t = Template::load();
    let mut problems = Vec::new();
    for (name, grants) in FUNCTIONS {
        let f = t.function(name);
        let (allowed, mut found) = granted(&t, &f);
        problems.append(&mut found);
        let mut wanted = BTreeSet::new();
        for (resource, action) in permissions::resource_actions(grants) {
            let text = match expected_resource(&t, &f, resource) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if !allowed.contains(&(text.clone(), action.to_string())) {
                problems.push(format!(
                    "{}: {TEMPLATE} does not allow {action} on {text} ({} in permissions.rs)",
                    f.name,
                    group_of(grants, resource, action)
                ));
            }
            wanted.insert((text, action.to_string()));
        }
        for (resource, action) in allowed.difference(&wanted) {
            problems.push(format!(
                "{}: {TEMPLATE} allows {action} on {resource}, which permissions.rs does not list for it",
                f.name
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The lists in permissions.rs follow the adapters: every AWS call an adapter makes is mapped
/// to its IAM actions, and every action granted for the code comes from such a call.
#[test]
fn the_permission_lists_follow_the_adapters_calls() {
    let dir = workspace_root().join("shared/aws/src");
    let mut called: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("shared/aws/src") {
        let path = entry.expect("dir entry").path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        if path.extension().is_none_or(|e| e != "rs") || file == "permissions.rs" {
            continue;
        }
        let code: String = std::fs::read_to_string(&path)
            .expect("source file")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for after in code.split(".client.").skip(1) {
            let op: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if after[op.len()..].starts_with('(') {
                called.entry(op).or_default().insert(file.clone());
            }
        }
    }
    let mut problems = Vec::new();
    let mapped: BTreeMap<&str, &[&str]> = SDK_OPERATIONS.iter().copied().collect();
    for (op, files) in &called {
        if !mapped.contains_key(op.as_str()) {
            problems.push(format!(
                "{files:?} call {op}, which permissions::SDK_OPERATIONS does not map to IAM actions"
            ));
        }
    }
    for op in mapped.keys() {
        if !called.contains_key(*op) {
            problems.push(format!(
                "permissions::SDK_OPERATIONS maps {op}, which no adapter calls any more"
            ));
        }
    }
    let from_calls: BTreeSet<&str> = mapped.values().flat_map(|a| a.iter().copied()).collect();
    let runtime: BTreeSet<&str> = permissions::actions(RUNTIME_GRANTS).into_iter().collect();
    let granted: BTreeSet<&str> = FUNCTIONS
        .iter()
        .flat_map(|(_, grants)| permissions::actions(grants))
        .filter(|a| !runtime.contains(a))
        .collect();
    for action in from_calls.difference(&granted) {
        problems.push(format!(
            "the adapters need {action}, which no function's list in permissions.rs grants"
        ));
    }
    for action in granted.difference(&from_calls) {
        problems.push(format!(
            "permissions.rs grants {action}, which no adapter call needs (SDK_OPERATIONS)"
        ));
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_event_rule_and_sources_match_the_code() {
    let t = Template::load();
    let mut problems = Vec::new();
    let events = t.function("events");
    let queue = expected_resource(&t, &events, Resource::EventsQueue).expect("events queue");
    // Every detail-type the events function handles (InboundEvent::from_envelope).
    let wanted: BTreeSet<&str> = SectionEventName::ALL
        .iter()
        .map(|e| e.as_str())
        .chain([DAILY_SUMMARY_PUBLISHED])
        .collect();
    let rules: Vec<_> = t
        .of_type("AWS::Events::Rule")
        .filter(|(_, r)| {
            prop(r, "Targets")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .any(|target| target.get("Arn").and_then(sub_text).as_deref() == Some(&queue))
        })
        .collect();
    if rules.len() != 1 {
        problems.push(format!(
            "expected one rule targeting {queue}, found {}",
            rules.len()
        ));
    }
    for (id, rule) in rules {
        let detail_types: BTreeSet<&str> = prop(rule, "EventPattern")
            .and_then(|p| p.get("detail-type"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if detail_types != wanted {
            problems.push(format!(
                "{id} matches detail-type {detail_types:?}; the code handles {wanted:?}"
            ));
        }
        if prop(rule, "EventBusName").is_none() {
            problems.push(format!(
                "{id} must be on the section-events bus, not the default bus"
            ));
        }
        // Only the upstream app's source reaches the function.
        let sources: Vec<Option<String>> = prop(rule, "EventPattern")
            .and_then(|p| p.get("source"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(sub_text)
            .collect();
        if sources != [Some("${UpstreamEventSource}".to_string())] {
            problems.push(format!(
                "{id} must match source UpstreamEventSource only, not {sources:?}"
            ));
        }
    }
    // The events function answers SQS batches with per-record failures.
    let partial = prop(events.resource, "Events")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter(|(_, e)| e.get("Type").and_then(Value::as_str) == Some("SQS"))
        .all(|(_, e)| {
            e.get("Properties")
                .and_then(|p| p.get("FunctionResponseTypes"))
                .and_then(Value::as_sequence)
                .is_some_and(|types| {
                    types
                        .iter()
                        .any(|v| v.as_str() == Some("ReportBatchItemFailures"))
                })
        });
    if !partial {
        problems.push("the events function's SQS source must report batch item failures".into());
    }
    // The scheduler is ticked every minute.
    let scheduler = t.function("scheduler");
    let ticked = t.of_type("AWS::Events::Rule").any(|(_, r)| {
        prop(r, "ScheduleExpression").and_then(Value::as_str) == Some("rate(1 minute)")
            && prop(r, "Targets")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .any(|target| {
                    target.get("Arn").and_then(sub_text).as_deref()
                        == Some(&format!("${{{}.Arn}}", scheduler.id))
                })
    });
    if !ticked {
        problems.push("no rate(1 minute) rule targets the scheduler function".into());
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The HTTP API routes every method the api function serves (`notify_api::ROUTES`) through the
/// JWT authorizer: the function trusts the verified claims it is handed. Only routes that
/// docs/openapi.json marks public (`"security": []`) may skip it. No route matches OPTIONS, so
/// API Gateway answers CORS preflight requests itself.
#[test]
fn the_http_api_serves_every_route_behind_the_authorizer() {
    let t = Template::load();
    let openapi: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("docs/openapi.json"))
            .expect("docs/openapi.json"),
    )
    .expect("docs/openapi.json is JSON");
    let public = |method: &str, path: &str| {
        openapi["paths"][path][method.to_lowercase()]["security"]
            .as_array()
            .is_some_and(|s| s.is_empty())
    };
    let mut problems = Vec::new();
    let mut proxied = BTreeSet::new();
    for (id, route) in t.of_type("AWS::ApiGatewayV2::Route") {
        let key = prop(route, "RouteKey")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (method, path) = key.split_once(' ').unwrap_or((key, ""));
        let jwt = prop(route, "AuthorizationType").and_then(Value::as_str) == Some("JWT");
        if path == "/{proxy+}" && jwt {
            proxied.insert(method.to_string());
        } else if jwt || !public(method, path) {
            problems.push(format!(
                "{id} ({key}): only `METHOD /{{proxy+}}` routes behind the JWT authorizer, and \
                 routes docs/openapi.json marks public without it, are expected"
            ));
        }
        if method == "OPTIONS" || method == "ANY" {
            problems.push(format!(
                "{id} ({key}) would send CORS preflight requests to the authorizer"
            ));
        }
    }
    let served: BTreeSet<String> = notify_api::ROUTES
        .iter()
        .map(|(method, _)| method.to_string())
        .collect();
    for method in served.difference(&proxied) {
        problems.push(format!(
            "the api function serves {method} routes, but no `{method} /{{proxy+}}` route reaches it"
        ));
    }
    for method in proxied.difference(&served) {
        problems.push(format!(
            "`{method} /{{proxy+}}` reaches the api function, which serves no {method} route"
        ));
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// Every action in permissions.rs is a real IAM action (cfn-lint's own list of them).
#[test]
fn every_listed_action_exists_in_iam() {
    let python = venv_bin("python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import importlib.resources as r; print(r.files('cfnlint.data.AdditionalSpecs').joinpath('Policies.json').read_text())",
        ])
        .output()
        .expect("running the virtualenv's python");
    assert!(
        out.status.success(),
        "reading cfn-lint's IAM action list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let known: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cfn-lint's Policies.json is JSON");
    let mut unknown = Vec::new();
    for (_, grants) in FUNCTIONS {
        for action in permissions::actions(grants) {
            let (service, name) = action.split_once(':').expect("service:Action");
            let name = name.to_lowercase();
            // Policies.json: {"<service>": {"Actions": {"<action in lower case>": {…}}}}.
            let exists = match &known[service]["Actions"] {
                serde_json::Value::Object(all) => all.contains_key(&name),
                serde_json::Value::Array(all) => all.iter().any(|a| a.as_str() == Some(&name)),
                _ => false,
            };
            if !exists {
                unknown.push(action);
            }
        }
    }
    unknown.sort_unstable();
    unknown.dedup();
    assert!(unknown.is_empty(), "not IAM actions: {unknown:?}");
}

#[test]
fn cfn_lint_reports_nothing() {
    let cfn_lint = venv_bin("cfn-lint");
    let out = Command::new(&cfn_lint)
        .arg(TEMPLATE)
        .current_dir(workspace_root())
        .output()
        .expect("running cfn-lint");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "cfn-lint {TEMPLATE} (exit {:?}):\n{report}",
        out.status.code()
    );
}

/// Names that `v` refers to: `Ref` arguments and `${Name}` in `Sub` texts, anywhere inside it
/// (conditions count: they refer to parameters with `Ref`).
fn referenced_names(v: &Value, out: &mut BTreeSet<String>) {
    if let Some((name, arg)) = intrinsic(v) {
        match (name.as_str(), arg) {
            ("Ref", Value::String(x)) => {
                out.insert(x.clone());
            }
            ("Sub", Value::String(text)) => sub_names(text, out),
            ("Sub", Value::Sequence(parts)) => {
                if let Some(Value::String(text)) = parts.first() {
                    sub_names(text, out);
                }
                parts.iter().skip(1).for_each(|p| referenced_names(p, out));
            }
            _ => referenced_names(arg, out),
        }
        return;
    }
    match v {
        Value::Mapping(m) => m.values().for_each(|x| referenced_names(x, out)),
        Value::Sequence(s) => s.iter().for_each(|x| referenced_names(x, out)),
        Value::Tagged(t) => referenced_names(&t.value, out),
        _ => {}
    }
}

fn sub_names(text: &str, out: &mut BTreeSet<String>) {
    for piece in text.split("${").skip(1) {
        if let Some(name) = piece.split('}').next() {
            out.insert(name.split('.').next().unwrap_or(name).to_string());
        }
    }
}

/// A parameter nothing uses is a setting the operator can change to no effect: typically a
/// function variable whose wiring was lost (cfn-lint does not notice through SAM).
#[test]
fn every_parameter_is_used() {
    let t = Template::load();
    let mut used = BTreeSet::new();
    for section in ["Conditions", "Resources", "Outputs", "Globals"] {
        if let Some(v) = t.root.get(section) {
            referenced_names(v, &mut used);
        }
    }
    let unused: Vec<&str> = t
        .root
        .get("Parameters")
        .and_then(Value::as_mapping)
        .expect("the template has Parameters")
        .keys()
        .filter_map(Value::as_str)
        .filter(|p| !used.contains(*p))
        .collect();
    assert!(
        unused.is_empty(),
        "parameters of {TEMPLATE} that nothing uses: {unused:?}"
    );
}
