# ruff: noqa: E501  (each question as asked, one line: grep finds it whole)
"""The 50 seed questions the catalogue answers, as asked: title, question, follow-ups.

Data, kept in the repo so that the pages and their test do not read anything outside it.
A scenario answers each seed it maps, its question then every follow-up, in this order
(`faults.Answer`; tests/unit/test_scenario_pages.py checks it).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SEEDS", "Seed"]


class Seed(NamedTuple):
    title: str
    question: str
    follow_ups: tuple[str, ...]


SEEDS: dict[int, Seed] = {
    1: Seed(
        "Slow API Response",
        "Your FastAPI endpoint suddenly becomes slow in production. How will you diagnose it?",
        (
            "How do you check whether the issue is DB latency or code latency?",
            "How do you use async to improve performance here?",
        ),
    ),
    2: Seed(
        "High Memory Usage",
        "Your Python API is consuming high memory after multiple requests. What steps will you take to find and fix the memory leak?",
        (
            "Which profiling tools will you use in Python?",
            "What patterns in FastAPI code can cause leaks?",
        ),
    ),
    3: Seed(
        "Concurrent Requests",
        "API gets 1k requests per second. How would you scale FastAPI to handle this?",
        (
            "Why use gunicorn + uvicorn workers?",
            "How many workers would you choose?",
        ),
    ),
    4: Seed(
        "Long Running Task",
        "You have a task that takes 5 minutes. How do you execute it without blocking API responses?",
        (
            "Why use Celery/RQ/background tasks?",
            "How do you notify users when task completes?",
        ),
    ),
    5: Seed(
        "File Upload 2GB",
        "Your client uploads a 2GB video. How do you handle large file uploads in FastAPI?",
        (
            "Why use streaming instead of saving directly?",
            "How do you handle upload interruption?",
        ),
    ),
    6: Seed(
        "API Timeout",
        "Your API must respond within 2 seconds but external API takes 6 seconds. How do you handle it?",
        (
            "How do you implement async timeout?",
            "How do you design a fallback response?",
        ),
    ),
    7: Seed(
        "Authentication Failure",
        "JWT authentication randomly fails for some users. What would you check?",
        (
            "Could it be a clock drift issue?",
            "How do you implement token refresh safely?",
        ),
    ),
    8: Seed(
        "Authorization Levels",
        "You need user roles: admin, seller, customer. How do you implement role-based access in FastAPI?",
        (
            "How do you protect endpoints dynamically?",
            "What if roles need to be updated without redeploy?",
        ),
    ),
    9: Seed(
        "Race Conditions",
        "Two requests update the same row simultaneously. How do you avoid race conditions?",
        (
            "When do you choose optimistic locking?",
            "How do you use transactions?",
        ),
    ),
    10: Seed(
        "Query Optimization",
        "A DB query takes 10 seconds. How will you optimize it from API side?",
        (
            "How do you cache queries?",
            "When to denormalize?",
        ),
    ),
    11: Seed(
        "Pagination",
        "You need to show 10 lakhs records. How will you design pagination?",
        (
            "Offset vs cursor pagination?",
            "Why cursor is faster?",
        ),
    ),
    12: Seed(
        "API Versioning",
        "Your API has breaking changes. How do you handle versioning?",
        (
            "How long do you maintain old versions?",
            "How to route requests to different versions?",
        ),
    ),
    13: Seed(
        "Multiple Response Types",
        "You must return JSON to web and XML to mobile. How do you handle content negotiation?",
        (
            "How do you auto-detect client type?",
            "How do you test this?",
        ),
    ),
    14: Seed(
        "Logging",
        "You need full request-response logging in production. How?",
        (
            "How to avoid logging passwords?",
            "How to log only errors?",
        ),
    ),
    15: Seed(
        "3rd Party API Failure",
        "Your API depends on a payment API that fails often. How do you handle reliability?",
        (
            "Circuit breaker pattern?",
            "Retry with exponential backoff?",
        ),
    ),
    16: Seed(
        "WebSockets",
        "You need live order status updates. How do you design a WebSocket endpoint?",
        (
            "How do you handle disconnects?",
            "How to scale WebSockets?",
        ),
    ),
    17: Seed(
        "Caching",
        "Your API repeatedly calculates a heavy operation. How do you cache it?",
        (
            "Why Redis over in-memory?",
            "How long will you cache?",
        ),
    ),
    18: Seed(
        "Rate Limiting",
        "Implement rate limiting for login endpoint.",
        (
            "Why Redis?",
            "How to handle IP spoofing?",
        ),
    ),
    19: Seed(
        "CI/CD Deployment",
        "Your update breaks production. What is your rollback approach?",
        (
            "How do you use blue-green deployment?",
            "How to rollback DB migrations?",
        ),
    ),
    20: Seed(
        "Schema Validation",
        "Your input body is inconsistent. How do you validate using Pydantic?",
        (
            "How to add custom validators?",
            "How to handle optional fields?",
        ),
    ),
    21: Seed(
        "API Documentation",
        "How do you customize Swagger UI for better readability?",
        (
            "How to hide internal APIs?",
            "How to add JWT authentication?",
        ),
    ),
    22: Seed(
        "SQL Injection",
        "A security team reports SQL injection risk. What do you do?",
        (
            "What is parameterized query?",
            "How to validate user input?",
        ),
    ),
    23: Seed(
        "Data Migration",
        "You add a new DB column. How to migrate without downtime?",
        (
            "How do you use Alembic?",
            "How do you handle backward compatibility?",
        ),
    ),
    24: Seed(
        "API Gateway",
        "You deploy ESB or API gateway. What changes in FastAPI?",
        (
            "Do you still keep authentication in FastAPI?",
            "How to secure internal APIs?",
        ),
    ),
    25: Seed(
        "Multiple Database Connections",
        "Your application needs 2 different DB connections. How to manage?",
        (
            "How to handle connection pooling?",
            "How to switch DB based on tenant?",
        ),
    ),
    26: Seed(
        "Background Scheduler",
        "You need a cron job inside FastAPI. How to implement it?",
        (
            "Why is APScheduler risky inside web worker?",
            "How to use external scheduler?",
        ),
    ),
    27: Seed(
        "Dependency Injection",
        "How do you share DB session across routes?",
        (
            "Why use Depends()?",
            "How to close session safely?",
        ),
    ),
    28: Seed(
        "Multipart Request",
        "Upload JSON + file together. How do you parse it in FastAPI?",
        (
            "What are form-data limits?",
            "How to validate file type?",
        ),
    ),
    29: Seed(
        "Distributed System",
        "Your API runs on 5 servers. How do you maintain user sessions?",
        (
            "Why store sessions in Redis?",
            "How to avoid session fixation?",
        ),
    ),
    30: Seed(
        "Bad Deployment",
        "You deployed FastAPI with 1 worker. Why is it wrong?",
        (
            "Why use multiple workers?",
            "How to pick worker type (sync/async)?",
        ),
    ),
    31: Seed(
        "Circular Imports",
        "Your FastAPI project breaks due to circular imports. How do you fix?",
        (
            "What is factory pattern?",
            "Why separate routers?",
        ),
    ),
    32: Seed(
        "Real-time Data Processing",
        "Client wants real-time logs from server. How do you implement it?",
        (
            "SSE vs WebSocket difference?",
            "Which scales better?",
        ),
    ),
    33: Seed(
        "Queue-Based Processing",
        "Payment webhook API receives 1 million hits. How do you design?",
        (
            "Why push to queue first?",
            "How to ensure idempotency?",
        ),
    ),
    34: Seed(
        "ETL API",
        "API triggers an ETL job. How do you handle large data?",
        (
            "Why use streaming?",
            "How to handle partial failures?",
        ),
    ),
    35: Seed(
        "Duplicate Requests",
        "User accidentally submits order twice. How do you prevent duplicates?",
        (
            "How to use idempotency keys?",
            "Why database unique constraints?",
        ),
    ),
    36: Seed(
        "Broken JSON Body",
        "API receives malformed JSON. How do you give better error response?",
        (
            "How to override exception handlers?",
            "How to log malformed JSON?",
        ),
    ),
    37: Seed(
        "Server Crash",
        "FastAPI crashes due to unhandled exception. How do you design global error handling?",
        (
            "How do you handle 422 errors?",
            "Should stack trace be returned?",
        ),
    ),
    38: Seed(
        "Multi-tenant App",
        "API must support multiple clients with different DBs.",
        (
            "How do you select DB per request?",
            "How do you isolate customer data?",
        ),
    ),
    39: Seed(
        "Upload Validation",
        "Only allow images under 5MB.",
        (
            "How to validate MIME type?",
            "How to prevent malicious files?",
        ),
    ),
    40: Seed(
        "Throttling Admin",
        "Admin APIs need no rate limit but user APIs need heavy limit.",
        (
            "How to differentiate client types?",
            "How to avoid bypassing?",
        ),
    ),
    41: Seed(
        "Bulk Insert",
        "You need to insert 50k rows.",
        (
            "Why use batch insert?",
            "How to handle partial success?",
        ),
    ),
    42: Seed(
        "API Security Audit",
        "Auditor finds your API leaking stack traces.",
        (
            "How do you hide exception messages?",
            "How do you enable secure logging?",
        ),
    ),
    43: Seed(
        "HTTPS Enforcement",
        "API must block all HTTP traffic.",
        (
            "How to enforce behind Nginx?",
            "How to redirect automatically?",
        ),
    ),
    44: Seed(
        "Webhook Retries",
        "Third-party sends same webhook multiple times.",
        (
            "How do you detect duplicates?",
            "How do you sign webhook events?",
        ),
    ),
    45: Seed(
        "Heavy JSON Serialization",
        "JSON response is 50MB.",
        (
            "Why use ORJSONResponse?",
            "How to compress responses?",
        ),
    ),
    46: Seed(
        "Soft Delete",
        "You need soft delete instead of permanent delete.",
        (
            "How to hide soft-deleted records?",
            "How to restore deleted data?",
        ),
    ),
    47: Seed(
        "Debug vs Production",
        "Your API behaves differently in debug mode.",
        (
            "Why never use debug in production?",
            "How to use .env for config?",
        ),
    ),
    48: Seed(
        "API Performance Testing",
        "You need to benchmark an endpoint.",
        (
            "How do you use Locust/JMeter?",
            "What performance metrics matter?",
        ),
    ),
    49: Seed(
        "ORM vs Raw Query",
        "ORM query is slow.",
        (
            "Why raw SQL may be faster?",
            "How to keep ORM + raw hybrid?",
        ),
    ),
    50: Seed(
        "Microservices",
        "You split monolith into microservices.",
        (
            "How do you handle distributed transactions?",
            "How do you handle network failures?",
        ),
    ),
}
