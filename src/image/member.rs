//! Sharing an image with another project: the membership and its status.

use serde_json::{json, Value};

use crate::timestamp::Timestamp;

/// A project's membership of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The image.
    pub image_id: String,
    /// The member project.
    pub member_id: String,
    /// Whether the member project accepted the image.
    pub status: MemberStatus,
    /// When the image was shared.
    pub created_at: Timestamp,
    /// Last status change.
    pub updated_at: Timestamp,
}

/// Where a membership stands: the member project decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// Shared, not yet answered; the image is not listed for the member by default.
    Pending,
    /// The member lists the image.
    Accepted,
    /// The member declined it.
    Rejected,
}

impl MemberStatus {
    /// Every status.
    pub const ALL: [MemberStatus; 3] = [
        MemberStatus::Pending,
        MemberStatus::Accepted,
        MemberStatus::Rejected,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
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
