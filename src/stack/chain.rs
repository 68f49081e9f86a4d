//! Which events belong to the operation we follow, once it has started: the operation CHAIN.
//!
//! Real CloudFormation gives the automatic rollback that a failure triggers an operation of its
//! own: a new OperationId, the same ClientRequestToken (every real stream with OperationIds and
//! a rollback shows it: `tests/fixtures/real-events/FINDINGS.md`). What a person calls "the
//! deployment" is the chain: the forward operation, then the rollback and clean-up phases it
//! leads to, until the stack's terminal status. A follower that keeps only the first
//! OperationId never sees `UPDATE_ROLLBACK_COMPLETE` and waits for its timeout.
//!
//! The rules, for one stack's events after the chain's first event, in order:
//! 1. an event without OperationId, or while the chain knows none: ours (streams from before
//!    OperationIds existed; the first operation after the baseline is ours);
//! 2. its OperationId is one of the chain's: ours;
//! 3. it carries the chain's ClientRequestToken, or the token of a request we made on the
//!    chain later (our CancelUpdateStack): ours, and its OperationId joins the chain;
//! 4. it carries another token than the chain's: not ours, except a stack-level rollback
//!    status (rule 5: someone else's CancelUpdateStack of our update carries their token);
//! 5. a stack-level event that continues a chain (a rollback, a clean-up phase, a terminal
//!    status): ours, and its OperationId joins. CloudFormation runs one operation at a time on
//!    a stack, so the phase that follows ours while ours has not ended is ours; this is also
//!    how a `CancelUpdateStack` rollback ("User Initiated" UPDATE_ROLLBACK_IN_PROGRESS during
//!    our update) joins;
//! 6. a stack-level event that starts an operation of another kind ("User Initiated" DELETE
//!    while a rollback runs): someone else's operation took over the stack; the chain is
//!    interrupted;
//! 7. a resource event of an OperationId not (yet) in the chain: held back until a stack-level
//!    event brings that OperationId in (events sharing a timestamp come in any order), then
//!    handed back; dropped with the chain.
//!
//! Pure: events in, verdicts out.

use super::events::Event;
use super::status;

/// What the chain says about one event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Part of the chain. `released`: events held back earlier that this one brought in,
    /// to be applied right after it, in their order.
    Ours { released: Vec<Event> },
    /// Someone else's, or an earlier operation's: ignore it.
    Foreign,
    /// Held back until its OperationId joins the chain (rule 7).
    Held,
    /// Another operation started on the stack: the chain will not reach its own end.
    Interrupted,
}

/// Held-back events beyond this are dropped oldest first: a stream of events that never join
/// is someone else's, and must not grow memory.
const MAX_HELD: usize = 1_000;

/// One stack's operation chain. See the module docs for the rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Chain {
    /// The chain's ClientRequestToken: ours when we started the operation, else learned from
    /// its first event.
    token: Option<String>,
    /// Tokens of requests we made on the chain later (CancelUpdateStack): an operation
    /// carrying one is ours (rule 3), as the rollback a cancel starts carries the cancelling
    /// request's token, not the update's (https://github.com/glassechidna/stackit/issues/26).
    adopted: Vec<String>,
    /// OperationIds of the chain, in the order they joined.
    operations: Vec<String>,
    /// Resource events of OperationIds not in the chain yet (rule 7).
    held: Vec<Event>,
}

impl Chain {
    /// A chain that starts with `first`, the operation's first stack-level event. `token`: our
    /// ClientRequestToken when we started the operation.
    pub(crate) fn starting_with(first: &Event, token: Option<&str>) -> Chain {
        let mut chain = Chain {
            token: token
                .map(str::to_string)
                .or_else(|| first.client_request_token.clone()),
            ..Chain::default()
        };
        chain.join(first.operation_id.as_deref());
        chain
    }

    /// The chain's OperationIds, in the order they joined (forward operation first).
    pub(crate) fn operations(&self) -> &[String] {
        &self.operations
    }

    /// From now on, events carrying `token` are ours too (rule 3).
    pub(crate) fn adopt_token(&mut self, token: &str) {
        if !self.adopted.iter().any(|t| t == token) {
            self.adopted.push(token.to_string());
        }
    }

    fn is_our_token(&self, token: &str) -> bool {
        self.token.as_deref() == Some(token) || self.adopted.iter().any(|t| t == token)
    }

    /// Classifies an event of this chain's stack (see the module docs).
    pub(crate) fn classify(&mut self, event: &Event) -> Verdict {
        let ours = Verdict::Ours {
            released: Vec::new(),
        };
        let Some(op) = event.operation_id.as_deref() else {
            // Rule 1, or rule 4 for tokens.
            return match (&self.token, &event.client_request_token) {
                (Some(_), Some(b)) if !self.is_our_token(b) => Verdict::Foreign,
                _ => ours,
            };
        };
        if self.operations.is_empty() || self.operations.iter().any(|o| o == op) {
            return ours;
        }
        match (&self.token, &event.client_request_token) {
            (Some(_), Some(b)) if self.is_our_token(b) => return self.join_and_release(op),
            // Rule 5 despite the token: a rollback that starts while the chain runs is its
            // own (someone cancelled the update from the console or the CLI; that rollback
            // carries their token, https://github.com/glassechidna/stackit/issues/26).
            (Some(_), Some(_)) if event.is_stack_level() && status::is_rollback(&event.status) => {
                return self.join_and_release(op);
            }
            (Some(_), Some(_)) => return Verdict::Foreign,
            _ => {}
        }
        if event.is_stack_level() {
            if continues_a_chain(event) {
                return self.join_and_release(op);
            }
            if event.is_user_initiated() {
                return Verdict::Interrupted;
            }
            // Another stack-level event of an operation we do not know: since only one
            // operation runs at a time, it is the next phase of ours.
            return self.join_and_release(op);
        }
        if self.held.len() >= MAX_HELD {
            self.held.remove(0);
        }
        self.held.push(event.clone());
        Verdict::Held
    }

    fn join(&mut self, op: Option<&str>) {
        if let Some(op) = op
            && !self.operations.iter().any(|o| o == op)
        {
            self.operations.push(op.to_string());
        }
    }

    fn join_and_release(&mut self, op: &str) -> Verdict {
        self.join(Some(op));
        let (released, kept): (Vec<Event>, Vec<Event>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|e| e.operation_id.as_deref() == Some(op));
        self.held = kept;
        Verdict::Ours { released }
    }
}

/// A stack-level status that a running chain moves on to: a rollback (automatic, or the one
/// `CancelUpdateStack` starts), a clean-up phase, or the end.
fn continues_a_chain(event: &Event) -> bool {
    let s = event.status.as_str();
    status::is_rollback(s) || s.ends_with("_CLEANUP_IN_PROGRESS") || status::is_terminal(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::events::tests::Ev;

    fn tagged(mut e: Event, op: &str, token: Option<&str>) -> Event {
        e.operation_id = Some(op.into());
        e.client_request_token = token.map(Into::into);
        e
    }

    fn is_ours(v: &Verdict) -> bool {
        matches!(v, Verdict::Ours { .. })
    }

    /// The chain of our update (token `dc-1`, operation `fwd`), from its first event.
    fn our_update(ev: &mut Ev) -> Chain {
        let start = tagged(
            ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
            "fwd",
            Some("dc-1"),
        );
        Chain::starting_with(&start, Some("dc-1"))
    }

    #[test]
    fn the_rollback_joins_by_token_and_another_token_stays_out() {
        let mut ev = Ev::new();
        let mut chain = our_update(&mut ev);
        let rollback_resource = tagged(
            ev.res(3.0, "Fn", "UPDATE_IN_PROGRESS", None),
            "rb",
            Some("dc-1"),
        );
        assert!(is_ours(&chain.classify(&rollback_resource)));
        assert_eq!(chain.operations(), ["fwd", "rb"]);
        let theirs = tagged(
            ev.res(4.0, "Other", "UPDATE_IN_PROGRESS", None),
            "x",
            Some("console"),
        );
        assert_eq!(chain.classify(&theirs), Verdict::Foreign);
    }

    #[test]
    fn without_tokens_a_stack_level_phase_joins_and_releases_what_was_held() {
        let mut ev = Ev::new();
        let start = tagged(
            ev.stack(0.0, "CREATE_IN_PROGRESS", Some("User Initiated")),
            "fwd",
            None,
        );
        let mut chain = Chain::starting_with(&start, None);
        // Same timestamp as the rollback's stack event, listed before it.
        let early = tagged(ev.res(3.0, "Ip", "DELETE_IN_PROGRESS", None), "rb", None);
        assert_eq!(chain.classify(&early), Verdict::Held);
        let rollback = tagged(
            ev.stack(
                3.0,
                "ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed"),
            ),
            "rb",
            None,
        );
        assert_eq!(
            chain.classify(&rollback),
            Verdict::Ours {
                released: vec![early]
            }
        );
        let cleanup = tagged(
            ev.stack(9.0, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None),
            "cleanup",
            None,
        );
        assert!(is_ours(&chain.classify(&cleanup)));
        assert_eq!(chain.operations(), ["fwd", "rb", "cleanup"]);
    }

    #[test]
    fn a_cancel_update_rollback_joins_but_a_delete_interrupts() {
        let mut ev = Ev::new();
        let start = tagged(
            ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
            "fwd",
            None,
        );
        let mut chain = Chain::starting_with(&start, None);
        let cancel = tagged(
            ev.stack(5.0, "UPDATE_ROLLBACK_IN_PROGRESS", Some("User Initiated")),
            "cancel",
            None,
        );
        assert!(is_ours(&chain.classify(&cancel)));
        let delete = tagged(
            ev.stack(6.0, "DELETE_IN_PROGRESS", Some("User Initiated")),
            "del",
            None,
        );
        assert_eq!(chain.classify(&delete), Verdict::Interrupted);
    }

    #[test]
    fn our_cancel_rollback_joins_by_its_own_token_once_adopted() {
        let mut ev = Ev::new();
        let start = tagged(
            ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
            "fwd",
            Some("dc-1"),
        );
        let rollback = tagged(
            ev.stack(5.0, "UPDATE_ROLLBACK_IN_PROGRESS", Some("User Initiated")),
            "rb",
            Some("dc-1-cancel"),
        );
        // Same timestamp as the rollback's stack event, listed before it.
        let cancelled = tagged(
            ev.res(5.0, "Db", "UPDATE_COMPLETE", None),
            "rb",
            Some("dc-1-cancel"),
        );
        // Without adoption that resource event carries someone else's token: lost.
        let mut before = Chain::starting_with(&start, Some("dc-1"));
        assert_eq!(before.classify(&cancelled), Verdict::Foreign);
        let mut chain = Chain::starting_with(&start, Some("dc-1"));
        chain.adopt_token("dc-1-cancel");
        assert!(is_ours(&chain.classify(&cancelled)));
        assert!(is_ours(&chain.classify(&rollback)));
        assert_eq!(chain.operations(), ["fwd", "rb"]);
    }

    #[test]
    fn a_rollback_someone_else_started_by_cancelling_our_update_is_ours() {
        // A console (or CLI) CancelUpdateStack during our update: the rollback carries the
        // console's token (https://github.com/glassechidna/stackit/issues/26), and only one
        // operation runs on a stack at a time, so it is our operation's rollback.
        let mut ev = Ev::new();
        let mut chain = our_update(&mut ev);
        let rollback = tagged(
            ev.stack(5.0, "UPDATE_ROLLBACK_IN_PROGRESS", Some("User Initiated")),
            "rb",
            Some("Console-CancelUpdateStack-1234"),
        );
        assert!(is_ours(&chain.classify(&rollback)));
        let end = tagged(
            ev.stack(9.0, "UPDATE_ROLLBACK_COMPLETE", None),
            "rb",
            Some("Console-CancelUpdateStack-1234"),
        );
        assert!(is_ours(&chain.classify(&end)));
        assert_eq!(chain.operations(), ["fwd", "rb"]);
        // Another token's resource event, or another kind of operation, stays out.
        let theirs = tagged(
            ev.res(9.5, "Other", "UPDATE_IN_PROGRESS", None),
            "x",
            Some("console"),
        );
        assert_eq!(chain.classify(&theirs), Verdict::Foreign);
    }

    #[test]
    fn events_without_operation_ids_are_ours_unless_their_token_differs() {
        let mut ev = Ev::new();
        let start = ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated"));
        let mut chain = Chain::starting_with(&start, Some("dc-1"));
        assert!(is_ours(&chain.classify(&ev.res(
            1.0,
            "A",
            "UPDATE_IN_PROGRESS",
            None
        ))));
        let mut theirs = ev.res(1.0, "B", "UPDATE_IN_PROGRESS", None);
        theirs.client_request_token = Some("other".into());
        assert_eq!(chain.classify(&theirs), Verdict::Foreign);
    }

    #[test]
    fn held_events_are_bounded() {
        let mut ev = Ev::new();
        let start = tagged(
            ev.stack(0.0, "UPDATE_IN_PROGRESS", Some("User Initiated")),
            "fwd",
            None,
        );
        let mut chain = Chain::starting_with(&start, None);
        for i in 0..(MAX_HELD + 10) {
            let e = tagged(ev.res(1.0, &format!("R{i}"), "X", None), "never", None);
            chain.classify(&e);
        }
        assert_eq!(chain.held.len(), MAX_HELD);
    }
}
