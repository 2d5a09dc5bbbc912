#!/bin/sh
# External script of the billing package (called with start, stop, validate).
case "$1" in
    start) /opt/billing/bin/billingctl start ;;
    stop) /opt/billing/bin/billingctl stop ;;
esac
