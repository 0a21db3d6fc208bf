//! Reading log files line by line for the audit commands. (Being written.)
