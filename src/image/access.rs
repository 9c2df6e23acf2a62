//! Looking up an image on behalf of a caller, the way Glance hides what the
//! caller may not see: an invisible image is 404 for every verb, a visible
//! image the caller may not change is 403.

use crate::auth::caller::Caller;
use crate::auth::policy::{Policy, Rule, Target};
use crate::db::images::ImageRepo;
use crate::error::{ApiError, ApiResult};
use crate::image::schema;
use crate::image::{Image, Visibility};
use crate::ports::StoreError;
use crate::timestamp::Timestamp;

/// A caller, the rules, and the image repository.
pub struct ImageAccess<'a> {
    /// Image records.
    pub repo: &'a ImageRepo<'a>,
    /// Who is asking.
    pub caller: &'a Caller,
    /// The authorization rules.
    pub policy: &'a Policy,
}

/// An image the caller may see, with the policy target describing it.
pub struct Visible {
    /// The image.
    pub image: Image,
    /// What rules about it are checked against.
    pub target: Target,
}

impl ImageAccess<'_> {
    /// The image `id` if the caller may see it; 404 otherwise (also for ids
    /// that are not UUIDs).
    pub fn load(&self, id: &str) -> ApiResult<Visible> {
        if !schema::is_uuid(id) {
            return Err(ApiError::image_not_found(id));
        }
        let image = self
            .repo
            .get(id)?
            .ok_or_else(|| ApiError::image_not_found(id))?;
        // Work a dead worker left reads as healed (`queued` again).
        let image = self.repo.heal(image, Timestamp::now())?;
        self.check(image)
    }

    /// `image` (already read) if the caller may see it; 404 otherwise.
    pub fn check(&self, image: Image) -> ApiResult<Visible> {
        let target = self.target_for(&image)?;
        if !self.visible(&image, &target) {
            return Err(ApiError::image_not_found(&image.id));
        }
        Ok(Visible { image, target })
    }

    /// 403 if the caller may not do `rule` to a visible image (404 if the
    /// rules do not even let it see the image).
    pub fn enforce(&self, rule: Rule, v: &Visible) -> ApiResult<()> {
        if self.policy.allows(rule, self.caller, &v.target) {
            return Ok(());
        }
        if !self.policy.allows(Rule::GetImage, self.caller, &v.target) {
            return Err(ApiError::image_not_found(&v.image.id));
        }
        Err(ApiError::forbidden(format!(
            "You are not authorized to complete {rule} action."
        )))
    }

    /// The policy target of `image` for this caller: `member_id` is the caller's
    /// project when it is a member of the (shared) image.
    pub fn target_for(&self, image: &Image) -> Result<Target, StoreError> {
        let member_id = match (&self.caller.project_id, image.visibility) {
            (Some(p), Visibility::Shared) if image.owner.as_deref() != Some(p.as_str()) => {
                self.repo.member_status(&image.id, p)?.map(|_| p.clone())
            }
            _ => None,
        };
        Ok(Target {
            owner: image.owner.clone(),
            member_id,
            visibility: Some(image.visibility.as_str().to_string()),
        })
    }

    /// Glance's `is_image_visible` followed by the `get_image` rule.
    fn visible(&self, image: &Image, target: &Target) -> bool {
        let by_record = self.caller.is_admin()
            || image.owner.is_none()
            || matches!(image.visibility, Visibility::Public | Visibility::Community)
            || self.caller.owns(image.owner.as_deref())
            || target.member_id.is_some();
        by_record && self.policy.allows(Rule::GetImage, self.caller, target)
    }
}
