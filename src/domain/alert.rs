//! The alert lifecycle.

use super::AlertStatus;

/// What a status change means: `None` when the alert is already there. A
/// refused move is the rule alone; the caller names the argument at fault
/// (`status` for one alert, `ids[3]` in a bulk change).
///
/// Alerts only move forward (OPEN -> ACKNOWLEDGED -> RESOLVED, or straight to
/// RESOLVED): a resolved alert is closed history that audit and repeat
/// folding rely on, so reopening is refused rather than silently allowed.
pub fn transition(from: AlertStatus, to: AlertStatus) -> Result<Option<AlertStatus>, String> {
    use AlertStatus::*;
    match (from, to) {
        (a, b) if a == b => Ok(None),
        (Open, Acknowledged) | (Open, Resolved) | (Acknowledged, Resolved) => Ok(Some(to)),
        _ => Err(format!("an alert that is {from} cannot move back to {to}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertStatus::*;

    #[test]
    fn forward_moves_only() {
        assert_eq!(transition(Open, Acknowledged).unwrap(), Some(Acknowledged));
        assert_eq!(transition(Open, Resolved).unwrap(), Some(Resolved));
        assert_eq!(transition(Acknowledged, Resolved).unwrap(), Some(Resolved));
        assert_eq!(transition(Resolved, Resolved).unwrap(), None);
        assert!(transition(Resolved, Open).is_err());
        assert!(transition(Acknowledged, Open).is_err());
        assert!(transition(Resolved, Acknowledged).is_err());
    }
}
