//! Sharing an image with another project: the membership and its status.

use serde_json::{json, Value};

use crate::timestamp::Timestamp;
use crate::wire_enum::wire_enum;

/// A project's membership of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The image.
    pub image_id: String,
    /// The member project.
    pub member_id: String,
    /// Whether the member project accepted the image.
    pub status: MemberStatus,
    /// Whether the member may share the image onward (the v1 API's
    /// `can_share`; v2 neither shows nor sets it).
    pub can_share: bool,
    /// When the image was shared.
    pub created_at: Timestamp,
    /// Last status change.
    pub updated_at: Timestamp,
}

wire_enum! {
    /// Where a membership stands: the member project decides.
    pub enum MemberStatus {
        /// Shared, not yet answered; the image is not listed for the member by default.
        Pending = "pending",
        /// The member lists the image.
        Accepted = "accepted",
        /// The member declined it.
        Rejected = "rejected",
    }
}

impl Member {
    /// The API representation.
    pub fn to_json(&self) -> Value {
        json!({
            "member_id": self.member_id,
            "image_id": self.image_id,
            "status": self.status.as_str(),
            "created_at": self.created_at.to_string(),
            "updated_at": self.updated_at.to_string(),
            "schema": "/v2/schemas/member",
        })
    }
}
