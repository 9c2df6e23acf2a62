//! Authorization rules, in one place, written the way Glance writes them.
//!
//! Each rule is an oslo.policy check string (`role:admin or (role:member and
//! project_id:%(owner)s)`), parsed once. The defaults are Glance's current
//! secure-RBAC defaults; an operator can replace any rule with a JSON object of
//! overrides (the `policy_overrides` variable) to loosen or tighten it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

mod check;

use check::{literal, parse_check, substitute, Check};

use crate::auth::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ports::Variables;
use crate::settings::{self, ConfigError, Var};

macro_rules! rules {
    ($( $(#[doc = $doc:literal])* $rule:ident = $name:literal => $check:literal; )*) => {
        /// A policy rule the service enforces (Glance's names).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Rule {
            $( $(#[doc = $doc])* $rule, )*
        }

        impl Rule {
            /// Every rule.
            pub const ALL: &'static [Rule] = &[$(Rule::$rule),*];

            /// Glance's name of the rule.
            pub fn as_str(self) -> &'static str {
                match self { $(Rule::$rule => $name,)* }
            }

            /// Glance's default check string (glance/policies/*.py, enforce_new_defaults=True).
            fn default_check(self) -> &'static str {
                match self { $(Rule::$rule => $check,)* }
            }
        }
    };
}

rules! {
    /// Who counts as an administrator.
    ContextIsAdmin = "context_is_admin" => "role:admin";
    /// What oslo.policy falls back to for rules nobody defined.
    Default = "default" => "";
    /// Callers acting as a service.
    ServiceApi = "service_api" => "role:service or role:admin";
    /// Create an image.
    AddImage = "add_image" => "rule:context_is_admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)";
    /// Delete an image.
    DeleteImage = "delete_image" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// See an image.
    GetImage = "get_image" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))";
    /// List images.
    GetImages = "get_images" => "rule:context_is_admin or (role:reader and project_id:%(project_id)s)";
    /// Change an image's metadata.
    ModifyImage = "modify_image" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// Make an image public.
    PublicizeImage = "publicize_image" => "rule:context_is_admin";
    /// Make an image community.
    CommunitizeImage = "communitize_image" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// Download an image's data.
    DownloadImage = "download_image" => "rule:context_is_admin or (role:member and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))";
    /// Upload or stage an image's data.
    UploadImage = "upload_image" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// Deactivate an image.
    Deactivate = "deactivate" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// Reactivate an image.
    Reactivate = "reactivate" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// Copy an image's data into another store.
    CopyImage = "copy_image" => "rule:context_is_admin";
    /// Share an image with a project.
    AddMember = "add_member" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// Stop sharing an image with a project.
    DeleteMember = "delete_member" => "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
    /// See one membership.
    GetMember = "get_member" => "rule:context_is_admin or role:reader and (project_id:%(project_id)s or project_id:%(member_id)s)";
    /// List an image's members.
    GetMembers = "get_members" => "rule:context_is_admin or role:reader and (project_id:%(project_id)s or project_id:%(member_id)s)";
    /// Accept or reject a membership.
    ModifyMember = "modify_member" => "rule:context_is_admin or (role:member and project_id:%(member_id)s)";
    /// See the stores' details.
    StoresInfoDetail = "stores_info_detail" => "rule:context_is_admin";
    /// Remove the copy of an image in one store.
    DeleteImageLocation = "delete_image_location" => "rule:context_is_admin";
    /// Manage the image cache (what the cache rules used to default to).
    ManageImageCache = "manage_image_cache" => "rule:context_is_admin";
    /// Queue an image for caching (`PUT /v2/cache/{image_id}`).
    CacheImage = "cache_image" => "rule:context_is_admin";
    /// List the cache and its queue (`GET /v2/cache`).
    CacheList = "cache_list" => "rule:context_is_admin";
    /// Remove images from the cache or its queue (`DELETE /v2/cache[/{image_id}]`).
    CacheDelete = "cache_delete" => "rule:context_is_admin";
    /// Clean invalid and stalled cache entries (`POST /v2/cache/clean`).
    CacheClean = "cache_clean" => "rule:context_is_admin";
    /// Prune the cache to its size (`POST /v2/cache/prune`).
    CachePrune = "cache_prune" => "rule:context_is_admin";
    /// Use the legacy tasks API at all (`/v2/tasks`, every method).
    TasksApiAccess = "tasks_api_access" => "rule:context_is_admin";
    /// Create a task (`POST /v2/tasks`), after `tasks_api_access`.
    AddTask = "add_task" => "rule:default";
    /// List tasks (`GET /v2/tasks`), after `tasks_api_access`.
    GetTasks = "get_tasks" => "rule:default";
    /// See a task (`GET /v2/tasks/{task_id}`), after `tasks_api_access`.
    GetTask = "get_task" => "rule:default";
    /// What metadefs rules of old defaulted to (anyone).
    MetadefDefault = "metadef_default" => "";
    /// Who may change the metadefs catalog.
    MetadefAdmin = "metadef_admin" => "rule:context_is_admin";
    /// See one namespace.
    GetMetadefNamespace = "get_metadef_namespace" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// List namespaces.
    GetMetadefNamespaces = "get_metadef_namespaces" => "rule:context_is_admin or (role:reader and project_id:%(project_id)s)";
    /// Change a namespace.
    ModifyMetadefNamespace = "modify_metadef_namespace" => "rule:metadef_admin";
    /// Create a namespace.
    AddMetadefNamespace = "add_metadef_namespace" => "rule:metadef_admin";
    /// Delete a namespace (or all its objects, properties or tags).
    DeleteMetadefNamespace = "delete_metadef_namespace" => "rule:metadef_admin";
    /// See one object.
    GetMetadefObject = "get_metadef_object" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// List a namespace's objects.
    GetMetadefObjects = "get_metadef_objects" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// Change an object.
    ModifyMetadefObject = "modify_metadef_object" => "rule:metadef_admin";
    /// Create an object.
    AddMetadefObject = "add_metadef_object" => "rule:metadef_admin";
    /// Delete an object.
    DeleteMetadefObject = "delete_metadef_object" => "rule:metadef_admin";
    /// List resource types.
    ListMetadefResourceTypes = "list_metadef_resource_types" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// List a namespace's resource type associations.
    GetMetadefResourceType = "get_metadef_resource_type" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// Associate a namespace with a resource type.
    AddMetadefResourceTypeAssociation = "add_metadef_resource_type_association" => "rule:metadef_admin";
    /// Remove a resource type association.
    RemoveMetadefResourceTypeAssociation = "remove_metadef_resource_type_association" => "rule:metadef_admin";
    /// See one property.
    GetMetadefProperty = "get_metadef_property" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// List a namespace's properties.
    GetMetadefProperties = "get_metadef_properties" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// Change a property.
    ModifyMetadefProperty = "modify_metadef_property" => "rule:metadef_admin";
    /// Create a property.
    AddMetadefProperty = "add_metadef_property" => "rule:metadef_admin";
    /// Delete a property.
    RemoveMetadefProperty = "remove_metadef_property" => "rule:metadef_admin";
    /// See one tag.
    GetMetadefTag = "get_metadef_tag" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// List a namespace's tags.
    GetMetadefTags = "get_metadef_tags" => "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
    /// Rename a tag.
    ModifyMetadefTag = "modify_metadef_tag" => "rule:metadef_admin";
    /// Create a tag.
    AddMetadefTag = "add_metadef_tag" => "rule:metadef_admin";
    /// Create several tags at once.
    AddMetadefTags = "add_metadef_tags" => "rule:metadef_admin";
    /// Delete a tag.
    DeleteMetadefTag = "delete_metadef_tag" => "rule:metadef_admin";
    /// Delete all of a namespace's tags.
    DeleteMetadefTags = "delete_metadef_tags" => "rule:metadef_admin";
}

impl Rule {
    /// The rule called `name`, if the service has it.
    pub fn parse(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule is checked against: attributes of the image (or member) at hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The image owner (Glance passes it as both `project_id` and `owner`).
    pub owner: Option<String>,
    /// The caller's project when it is a member of the image.
    pub member_id: Option<String>,
    /// The image visibility.
    pub visibility: Option<String>,
}

impl Target {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "project_id" | "owner" => self.owner.as_deref(),
            "member_id" => self.member_id.as_deref(),
            "visibility" => self.visibility.as_deref(),
            _ => None,
        }
    }
}

/// The rules: Glance's defaults, parsed on first use and cached (a request
/// needs a handful of them, some many times), with the operator's overrides.
#[derive(Debug, Default)]
pub struct Policy {
    /// Overrides of the service's rules.
    overrides: HashMap<Rule, Rc<Check>>,
    /// Helper rules the overrides define for each other (`rule:name`).
    helpers: HashMap<String, Rc<Check>>,
    parsed: RefCell<HashMap<Rule, Rc<Check>>>,
}

impl Policy {
    /// Glance's defaults with `overrides` (a JSON object of rule → check string)
    /// applied. A name that is neither one of the service's rules nor used as
    /// `rule:name` by another rule is refused (a misspelt rule would otherwise
    /// silently change nothing), as is a `rule:name` naming nothing.
    pub fn with_overrides(overrides: &str) -> Result<Self, ConfigError> {
        let mut policy = Policy::default();
        if overrides.trim().is_empty() {
            return Ok(policy);
        }
        let map: HashMap<String, String> = serde_json::from_str(overrides).map_err(|e| {
            ConfigError(format!(
                "policy_overrides must be a JSON object of strings: {e}"
            ))
        })?;
        let mut custom = HashMap::new();
        for (name, text) in &map {
            let check = parse_check(text)
                .map_err(|e| ConfigError(format!("policy_overrides: rule '{name}': {e}")))?;
            match Rule::parse(name) {
                Some(rule) => {
                    policy.overrides.insert(rule, Rc::new(check));
                }
                None => {
                    custom.insert(name.clone(), Rc::new(check));
                }
            }
        }
        let mut referenced = Vec::new();
        for check in policy.overrides.values().chain(custom.values()) {
            check.referenced(&mut referenced);
        }
        for rule in Rule::ALL {
            if let Ok(check) = parse_check(rule.default_check()) {
                check.referenced(&mut referenced);
            }
        }
        for name in custom.keys() {
            if !referenced.contains(name) {
                let known: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
                return Err(ConfigError(format!(
                    "policy_overrides names unknown rule '{name}' (the rules are: {})",
                    known.join(", ")
                )));
            }
        }
        for name in &referenced {
            if Rule::parse(name).is_none() && !custom.contains_key(name) {
                return Err(ConfigError(format!(
                    "policy_overrides: 'rule:{name}' refers to a rule nobody defines"
                )));
            }
        }
        policy.helpers = custom;
        Ok(policy)
    }

    /// Glance's defaults with the operator's `policy_overrides` variable applied.
    pub fn load(vars: &dyn Variables) -> Result<Self, ConfigError> {
        Self::with_overrides(&settings::value(vars, Var::PolicyOverrides))
    }

    fn rule(&self, rule: Rule) -> Rc<Check> {
        if let Some(c) = self.overrides.get(&rule) {
            return c.clone();
        }
        let mut parsed = self.parsed.borrow_mut();
        parsed
            .entry(rule)
            // The defaults are tested to parse; a failure would deny, never allow.
            .or_insert_with(|| {
                Rc::new(parse_check(rule.default_check()).unwrap_or(Check::Always(false)))
            })
            .clone()
    }

    /// The rule or helper `name` refers to (`rule:name` inside a check).
    fn named(&self, name: &str) -> Option<Rc<Check>> {
        match Rule::parse(name) {
            Some(rule) => Some(self.rule(rule)),
            None => self.helpers.get(name).cloned(),
        }
    }

    /// Whether `caller` passes `rule` for `target`.
    ///
    /// Scope comes first: Glance registers its rules with `scope_types=['project']`
    /// and enforces scope, so a caller whose token is not scoped to a project (a
    /// system- or domain-scoped Keystone token) fails every rule, whatever its
    /// roles — a system admin may not create or list images (403) and sees none
    /// (404), as glance-tempest-plugin's RBAC suites check.
    pub fn allows(&self, rule: Rule, caller: &Caller, target: &Target) -> bool {
        if caller.project_id.is_none() {
            return false;
        }
        self.eval(&self.rule(rule), caller, target, 0)
    }

    /// 403 unless `caller` passes `rule`.
    pub fn enforce(&self, rule: Rule, caller: &Caller, target: &Target) -> ApiResult<()> {
        if self.allows(rule, caller, target) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "You are not authorized to complete {rule} action."
            )))
        }
    }

    fn eval(&self, check: &Check, caller: &Caller, target: &Target, depth: u8) -> bool {
        if depth > 16 {
            return false; // a rule cycle in operator overrides
        }
        match check {
            Check::Always(b) => *b,
            Check::Role(r) => caller.has_role(&r.to_ascii_lowercase()),
            Check::Rule(name) => self
                .named(name)
                .is_some_and(|c| self.eval(&c, caller, target, depth + 1)),
            Check::Generic { kind, matches } => {
                let Some(wanted) = substitute(matches, target) else {
                    return false;
                };
                if let Some(lit) = literal(kind) {
                    return lit == wanted;
                }
                let have = match kind.as_str() {
                    "project_id" | "tenant" => caller.project_id.as_deref(),
                    "user_id" => caller.user_id.as_deref(),
                    "is_admin" => Some(if caller.is_admin() { "True" } else { "False" }),
                    _ => None,
                };
                have == Some(wanted.as_str())
            }
            Check::Not(c) => !self.eval(c, caller, target, depth + 1),
            Check::And(cs) => cs.iter().all(|c| self.eval(c, caller, target, depth + 1)),
            Check::Or(cs) => cs.iter().any(|c| self.eval(c, caller, target, depth + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(project: &str, roles: &[&str]) -> Caller {
        Caller::new(Some(project.to_string()), None, roles)
    }

    fn target(owner: &str, vis: &str, member: Option<&str>) -> Target {
        Target {
            owner: Some(owner.to_string()),
            member_id: member.map(str::to_string),
            visibility: Some(vis.to_string()),
        }
    }

    #[test]
    fn defaults_parse() {
        for rule in Rule::ALL {
            assert!(parse_check(rule.default_check()).is_ok(), "{rule}");
        }
    }

    #[test]
    fn glance_defaults() {
        let p = Policy::default();
        let own = target("p1", "private", None);
        assert!(p.allows(Rule::ModifyImage, &caller("p1", &["member"]), &own));
        assert!(!p.allows(Rule::ModifyImage, &caller("p1", &["reader"]), &own));
        assert!(!p.allows(Rule::ModifyImage, &caller("p2", &["member"]), &own));
        assert!(p.allows(Rule::ModifyImage, &caller("p2", &["admin"]), &own));
        assert!(p.allows(Rule::GetImage, &caller("p1", &["reader"]), &own));
        assert!(!p.allows(Rule::GetImage, &caller("p1", &[]), &own));
        assert!(!p.allows(Rule::GetImage, &caller("p2", &["reader"]), &own));
        let public = target("p1", "public", None);
        assert!(p.allows(Rule::GetImage, &caller("p2", &["reader"]), &public));
        assert!(!p.allows(Rule::DownloadImage, &caller("p2", &["reader"]), &public));
        assert!(p.allows(Rule::DownloadImage, &caller("p2", &["member"]), &public));
        assert!(!p.allows(Rule::PublicizeImage, &caller("p1", &["member"]), &own));
        let shared = target("p1", "shared", Some("p2"));
        assert!(p.allows(Rule::ModifyMember, &caller("p2", &["member"]), &shared));
        assert!(!p.allows(
            Rule::ModifyMember,
            &caller("p1", &["member"]),
            &target("p1", "shared", None)
        ));
    }

    #[test]
    fn callers_without_a_project_scope_pass_no_rule() {
        let p = Policy::with_overrides(r#"{"get_images": ""}"#).unwrap();
        let system_admin = Caller::new(None, Some("admin".into()), &["admin"]);
        assert!(!p.allows(Rule::AddImage, &system_admin, &Target::default()));
        assert!(!p.allows(Rule::GetImages, &system_admin, &Target::default()));
        assert!(!p.allows(Rule::GetImage, &system_admin, &target("p1", "public", None)));
        assert!(p.allows(Rule::GetImages, &caller("p1", &[]), &Target::default()));
    }

    #[test]
    fn overrides_replace_rules() {
        let p = Policy::with_overrides(r#"{"publicize_image": "role:member"}"#).unwrap();
        assert!(p.allows(
            Rule::PublicizeImage,
            &caller("p1", &["member"]),
            &Target::default()
        ));
        let p = Policy::with_overrides(r#"{"get_images": "!"}"#).unwrap();
        assert!(!p.allows(
            Rule::GetImages,
            &caller("p1", &["admin"]),
            &target("p1", "public", None)
        ));
        assert!(Policy::with_overrides("[1]").is_err());
        assert!(Policy::with_overrides(r#"{"x": "role:a and ("}"#).is_err());
    }

    #[test]
    fn overrides_naming_unknown_rules_are_configuration_errors() {
        let err = Policy::with_overrides(r#"{"publicise_image": "role:member"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown rule 'publicise_image'"),
            "{err}"
        );
        let err = Policy::with_overrides(r#"{"get_image": "rule:owner_or_admin"}"#).unwrap_err();
        assert!(err.to_string().contains("'rule:owner_or_admin'"), "{err}");
        // A helper rule another rule uses is fine.
        let p = Policy::with_overrides(
            r#"{"owner_or_admin": "role:admin or project_id:%(owner)s", "get_image": "rule:owner_or_admin"}"#,
        )
        .unwrap();
        assert!(p.allows(
            Rule::GetImage,
            &caller("p1", &[]),
            &target("p1", "private", None)
        ));
        assert!(!p.allows(
            Rule::GetImage,
            &caller("p2", &[]),
            &target("p1", "private", None)
        ));
    }

    #[test]
    fn generic_checks_and_negation() {
        let p = Policy::with_overrides(
            r#"{"get_image": "not 'private':%(visibility)s and is_admin:False"}"#,
        )
        .unwrap();
        assert!(p.allows(
            Rule::GetImage,
            &caller("p1", &["member"]),
            &target("p1", "public", None)
        ));
        assert!(!p.allows(
            Rule::GetImage,
            &caller("p1", &["member"]),
            &target("p1", "private", None)
        ));
        assert!(!p.allows(
            Rule::GetImage,
            &caller("p1", &["admin"]),
            &target("p1", "public", None)
        ));
    }
}
