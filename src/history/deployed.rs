//! The last commit deployed successfully under a lock key, for `forbid-older` (never deploy
//! backwards): one item per lock key, pk = the lock key, sk = [`DEPLOYED`], replaced by each
//! successful deployment (which holds the lock, so the writes come one after the other). Its
//! sort key sorts before `LOCK`, so the lock's Query (`sk >= LOCK`) never reads it.
//!
//! Pure data and conversions; the store's I/O is in [`super::store`].

use serde::{Deserialize, Serialize};

use crate::registry::item::{Item, get_s, key, put_opt_s, s};

/// Sort key of the item.
pub const DEPLOYED: &str = "DEPLOYED";

/// What was deployed last under a lock key, and by which run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub lock_key: String,
    pub stack: String,
    pub repository: Option<String>,
    pub git_ref: Option<String>,
    pub sha: String,
    pub run_url: Option<String>,
    pub correlation_id: String,
    /// When it finished, on the deploying run's clock: for people.
    pub at: String,
}

impl Deployed {
    /// `acme/api@main`, as the lock's holders are named.
    pub fn origin(&self) -> String {
        crate::lock::HolderInfo {
            repository: self.repository.clone(),
            git_ref: self.git_ref.clone(),
            owner: self.correlation_id.clone(),
            ..Default::default()
        }
        .origin()
    }

    pub fn to_item(&self) -> Item {
        let mut item = key(&self.lock_key, DEPLOYED);
        item.insert("stack".into(), s(&self.stack));
        put_opt_s(&mut item, "repository", self.repository.as_deref());
        put_opt_s(&mut item, "git_ref", self.git_ref.as_deref());
        item.insert("sha".into(), s(&self.sha));
        put_opt_s(&mut item, "run_url", self.run_url.as_deref());
        item.insert("correlation_id".into(), s(&self.correlation_id));
        item.insert("at".into(), s(&self.at));
        item
    }

    pub fn from_item(item: &Item) -> Result<Deployed, String> {
        let text = |name: &str| get_s(item, name).map(str::to_string);
        Ok(Deployed {
            lock_key: text("pk").ok_or("deployed item without pk")?,
            stack: text("stack").unwrap_or_default(),
            repository: text("repository"),
            git_ref: text("git_ref"),
            sha: text("sha").ok_or("deployed item without sha")?,
            run_url: text("run_url"),
            correlation_id: text("correlation_id").unwrap_or_default(),
            at: text("at").unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_before_the_lock() {
        let d = Deployed {
            lock_key: "production".into(),
            stack: "payments".into(),
            repository: Some("acme/payments".into()),
            git_ref: Some("refs/heads/main".into()),
            sha: "abc1234".into(),
            run_url: Some("https://github.com/acme/payments/actions/runs/1".into()),
            correlation_id: "20260114-123456-abc1234".into(),
            at: "2026-01-14T12:40:00Z".into(),
        };
        assert_eq!(Deployed::from_item(&d.to_item()), Ok(d.clone()));
        assert_eq!(d.origin(), "acme/payments@main");
        assert!(DEPLOYED < crate::registry::keys::LOCK);
    }
}
