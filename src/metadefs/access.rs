//! Who may see and change a namespace, as Glance decides it in two places:
//! its database layer hides a namespace the caller may not see (an admin
//! sees all; anyone sees a public one or one without an owner; a project
//! sees its own), and its policy layer checks the rule with the namespace's
//! owner and visibility as the target. A rule that fails on a namespace the
//! caller may not even read is a 404, not a 403, so nothing is given away.

use crate::auth::caller::Caller;
use crate::auth::policy::{Policy, Rule, Target};
use crate::db::metadefs::{MetadefRepo, Namespace, Scope};
use crate::error::{ApiError, ApiResult};

/// The 404 of a namespace that does not exist or that the caller may not see.
pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Metadata definition namespace={name} was not found."
    ))
}

/// Namespace lookups and rule checks for one caller.
pub struct MetadefAccess<'a> {
    /// Who is asking.
    pub caller: &'a Caller,
    /// Under which rules.
    pub policy: &'a Policy,
}

impl MetadefAccess<'_> {
    /// Glance's `context.is_admin`.
    fn is_admin(&self) -> bool {
        self.policy
            .allows(Rule::ContextIsAdmin, self.caller, &Target::default())
    }

    /// Which namespaces a list may hold.
    pub fn scope(&self) -> Scope {
        if self.is_admin() {
            Scope::All
        } else {
            Scope::Project(self.caller.project_id.clone())
        }
    }

    /// Whether the database layer would show `ns` to the caller.
    pub fn visible(&self, ns: &Namespace) -> bool {
        self.is_admin()
            || ns.owner.is_none()
            || ns.visibility == "public"
            || (ns.owner.is_some() && ns.owner == self.caller.project_id)
    }

    /// The namespace called `name`: 404 if it does not exist or is hidden.
    pub fn find(&self, repo: &MetadefRepo, name: &str) -> ApiResult<Namespace> {
        match repo.namespace(name)? {
            Some(ns) if self.visible(&ns) => Ok(ns),
            _ => Err(not_found(name)),
        }
    }

    fn target(&self, ns: Option<&Namespace>) -> Target {
        match ns {
            Some(ns) => Target {
                owner: ns.owner.clone(),
                member_id: None,
                visibility: Some(ns.visibility.clone()),
            },
            None => Target {
                owner: self.caller.project_id.clone(),
                ..Target::default()
            },
        }
    }

    /// Whether the caller passes `rule` for `ns` (or for no namespace).
    pub fn allows(&self, rule: Rule, ns: Option<&Namespace>) -> bool {
        self.policy.allows(rule, self.caller, &self.target(ns))
    }

    /// 403 unless the caller passes `rule`; 404 instead when `ns` is one it
    /// may not read.
    pub fn enforce(&self, rule: Rule, ns: Option<&Namespace>) -> ApiResult<()> {
        if self.allows(rule, ns) {
            return Ok(());
        }
        if let Some(ns) = ns {
            if rule == Rule::GetMetadefNamespace
                || !self.allows(Rule::GetMetadefNamespace, Some(ns))
            {
                return Err(not_found(&ns.namespace));
            }
        }
        Err(ApiError::forbidden(format!(
            "You are not authorized to complete {rule} action."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(vis: &str, owner: Option<&str>) -> Namespace {
        Namespace {
            id: 1,
            namespace: "n".into(),
            display_name: None,
            description: None,
            visibility: vis.into(),
            protected: false,
            owner: owner.map(str::to_string),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn readers_see_public_and_their_own_admins_change() {
        let policy = Policy::default();
        let reader = Caller::new(Some("p1".into()), None, &["reader"]);
        let member = Caller::new(Some("p1".into()), None, &["member", "reader"]);
        let admin = Caller::new(Some("p9".into()), None, &["admin", "member", "reader"]);
        let a = |c| MetadefAccess {
            caller: c,
            policy: &policy,
        };
        let private_other = ns("private", Some("p2"));
        let public_other = ns("public", Some("p2"));
        let own = ns("private", Some("p1"));
        assert!(!a(&reader).visible(&private_other));
        assert!(a(&reader).visible(&public_other));
        assert!(a(&reader).visible(&own));
        assert!(a(&admin).visible(&private_other));
        assert!(a(&reader)
            .enforce(Rule::GetMetadefNamespace, Some(&public_other))
            .is_ok());
        // A member may read but not change: 403 where it can read, else 404.
        let e = a(&member)
            .enforce(Rule::ModifyMetadefNamespace, Some(&public_other))
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        let e = a(&member)
            .enforce(Rule::AddMetadefNamespace, None)
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert!(a(&admin)
            .enforce(Rule::DeleteMetadefNamespace, Some(&private_other))
            .is_ok());
        let nobody = Caller::new(Some("p1".into()), None, &[]);
        let e = a(&nobody)
            .enforce(Rule::GetMetadefTags, Some(&public_other))
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
        assert_eq!(a(&admin).scope(), Scope::All);
        assert_eq!(a(&reader).scope(), Scope::Project(Some("p1".into())));
    }
}
