//! Handoff login CSRF (issue 12 item 5).
