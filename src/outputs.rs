//! The step's outputs and the state handed to the post step, by name.
//!
//! Names live here once, so the main step, the post step and the tests (which parse the
//! runner's files) cannot drift apart.

/// Keys saved with `GITHUB_STATE`; the post step reads them back as `STATE_<key>`.
pub(crate) mod state {
    pub(crate) const CORRELATION_ID: &str = "correlation_id";
    pub(crate) const STARTED_AT: &str = "started_at";
    pub(crate) const MODE: &str = "mode";
    pub(crate) const LOCK_TABLE: &str = "lock_table";
    pub(crate) const LOCK_KEY: &str = "lock_key";
    pub(crate) const LOCK_OWNER: &str = "lock_owner";
    pub(crate) const LOCK_FENCE: &str = "lock_fence";
    pub(crate) const LOCK_ACQUIRED_AT: &str = "lock_acquired_at";
    /// Set when the main step reached its end (its final card is posted): the post step does
    /// not post another.
    pub(crate) const ENDED: &str = "ended";
    /// Set once the main step has released the lock itself: the post step then has nothing to do.
    pub(crate) const LOCK_RELEASED: &str = "lock_released";
    pub(crate) const REGION: &str = "region";
    /// The GitHub deployment (`github-deployment: true`), for its final status in mode lock.
    pub(crate) const DEPLOYMENT_ID: &str = "deployment_id";
    /// The Slack card (`channel/ts`), so the post step updates the same message.
    pub(crate) const SLACK_CARD: &str = "slack_card";
    /// Mode lock: where the stack's event history stood when the lock was taken, so the post
    /// step can tell what the job's later steps deployed.
    pub(crate) const STACK_BASELINE: &str = "stack_baseline";
    /// `on-cancel: cancel-update`: the rollback our CancelUpdateStack started was still
    /// running when the main step had to stop (its status then). The post step releases the
    /// lock only once the stack has settled; else the lease frees it.
    pub(crate) const CANCEL_ROLLBACK: &str = "cancel_rollback";
}

/// Output names, as declared in `action.yml` (a test checks the two agree).
pub const OUTPUTS: &[&str] = &[
    "correlation-id",
    "lock-acquired",
    "lock-wait-seconds",
    "lock-fence",
    "lock-lost",
    "outcome",
    "stack-status",
    "stack-id",
    "duration-seconds",
    "estimated-duration-seconds",
    "failure-reason",
    "failed-resource",
    "stack-outputs",
    "slack-ts",
    "deployment-id",
    "change-set-name",
    "change-set-id",
    "changes",
    "risk",
    "superseded-by",
];
