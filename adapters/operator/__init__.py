"""What only the operator holds: keys, signatures, approvals."""
