//! DynamoDB emulators (being written).
