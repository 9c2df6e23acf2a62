//! Who is asking: the caller's project, user and roles.

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Project (tenant) the caller acts for; owner of the images it creates.
    pub project_id: Option<String>,
    /// User id, for the record.
    pub user_id: Option<String>,
    /// Role names, lower-cased, with Keystone's implied roles expanded.
    pub roles: Vec<String>,
}

impl Caller {
    /// A caller with the given project and roles; implied roles are added
    /// (admin ⇒ member ⇒ reader), as Keystone expands them.
    pub fn new(project_id: Option<String>, user_id: Option<String>, roles: &[&str]) -> Self {
        let mut out: Vec<String> = Vec::new();
        let mut push = |r: &str| {
            if !r.is_empty() && !out.iter().any(|x| x == r) {
                out.push(r.to_string());
            }
        };
        for role in roles {
            let role = role.trim().to_ascii_lowercase();
            push(&role);
            match role.as_str() {
                "admin" => {
                    push("member");
                    push("reader");
                }
                "member" => push("reader"),
                _ => {}
            }
        }
        Caller {
            project_id,
            user_id,
            roles: out,
        }
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Glance's `context_is_admin`: the admin role.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    /// Whether the caller's project is `owner`.
    pub fn owns(&self, owner: Option<&str>) -> bool {
        matches!((self.project_id.as_deref(), owner), (Some(p), Some(o)) if p == o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_roles_are_expanded() {
        let c = Caller::new(Some("p".into()), None, &["Admin"]);
        assert_eq!(c.roles, vec!["admin", "member", "reader"]);
        let c = Caller::new(None, None, &["member", "reader"]);
        assert_eq!(c.roles, vec!["member", "reader"]);
        assert!(!c.is_admin());
    }

    #[test]
    fn ownership_needs_a_project() {
        let anon = Caller::new(None, None, &["admin"]);
        assert!(!anon.owns(None));
        let c = Caller::new(Some("p".into()), None, &[]);
        assert!(c.owns(Some("p")));
        assert!(!c.owns(Some("q")));
    }
}
