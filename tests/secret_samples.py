# ruff: noqa: E501
"""Secret shapes after the gitleaks / detect-secrets rule lists, and look-alikes that are not
secrets: shared by the redaction tests and bench/redaction.py (recall and precision)."""

from __future__ import annotations

PEM_LINE = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw"
PEM_BODY = f"{PEM_LINE}\n" * 3 + "Zm9vYmFy7Q==\n"
"""Three full lines and the short last line that used to leak."""

SECRETS: list[tuple[str, str, str]] = [
    ("anthropic_key", 'ANTHROPIC = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345"', "AbCdEfGh"),
    ("openai_key", "OPENAI=sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123", "AbCdEfGh"),
    ("openai_key", "key sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123 here", "AbCdEfGh"),
    ("aws_access_key", "aws_id AKIAIOSFODNN7EXAMPLE", "IOSFODNN7"),
    ("github_token", "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghij"),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrst", "11ABCDEFG"),
    ("gitlab_token", "CI glpat-AbCdEfGhIjKlMnOpQrSt12", "AbCdEfGhIj"),
    ("slack_token", "slack xoxb-1234567890-abcdefghijkl", "1234567890"),
    ("slack_token", "user xoxp-1234567890-1234567890-abcdefghijkl", "1234567890"),
    (
        "slack_webhook",
        "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "XXXX",
    ),
    ("google_api_key", "g AIzaSyA1234567890abcdefghijklmnopqrstuv", "SyA1234567890"),
    ("google_oauth_secret", "cs GOCSPX-AbCdEfGhIjKlMnOpQrStUvWxYz12", "AbCdEfGh"),
    ("stripe_key", "stripe sk_live_abcdefghijklmnop1234", "abcdefghijklmnop"),
    ("huggingface_token", "hf hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "AbCdEfGh"),
    ("npm_token", "//registry: npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "AbCdEfGh"),
    (
        "pypi_token",
        "pw pypi-AgEIcHlwaS5vcmcCJDAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMAAC",
        "AgEIc",
    ),
    (
        "sendgrid_key",
        "SG.ABCDEFGHIJKLMNOPQRSTUV.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq",
        "ABCDEF",
    ),
    (
        "azure_storage_key",
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey="
        + "A1b2C3d4" * 11
        + "==;EndpointSuffix=core.windows.net",
        "A1b2C3d4",
    ),
    ("azure_sas_signature", "?sv=2020&sig=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEF%3D", "AbCdEf"),
    ("azure_client_secret", "secret: abc8Q~AbCdEfGhIjKlMnOpQrStUvWxYz01234", "AbCdEfGh"),
    ("jwt", "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "dozjg"),
    ("bearer_token", "Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop"),
    ("url_password", "DB=postgres://app:s3cretpass@db:5432/x", "s3cretpass"),
    ("url_password", "https://user:ghs_tok3nvalue@github.com", "tok3nvalue"),
    ("secret_value", 'password = "hunter2"', "hunter2"),
    ("secret_value", "db_password: 'correct horse'", "correct horse"),
    ("secret_value", "secret: abc123xyz", "abc123xyz"),
    ("secret_value", "token=abcd1234efgh", "abcd1234efgh"),
    ("secret_value", 'OPIK_API_KEY="opik-key-value"', "opik-key-value"),
    ("secret_value", 'COMET_API_KEY = "comet-value"', "comet-value"),
    ("secret_value", '{"api_key": "zzz-json-value"}', "zzz-json-value"),
    ("secret_value", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalr"),
    ("secret_value", "STRIPE_KEY=Plain-Mixed-Case-Value", "Plain-Mixed"),
    ("secret_value", "export DJANGO_SECRET=justletters", "justletters"),
    ("secret_value", "GITHUB_TOKEN=abcdef", "abcdef"),
    ("secret_value", "DB_PASSWORD = hunter", "hunter"),
    (
        "secret_value",
        "    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=",
        "LS0tLS1C",
    ),
    ("secret_value", "    token: k8s-sa-token-value-1234", "k8s-sa-token"),
    ("secret_value", '      "auth": "dXNlcjpwYXNzd29yZA=="', "dXNlcjpw"),
    ("secret_value", 'db_password = "tf-var-value"', "tf-var-value"),
    (
        "private_key",
        f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----",
        "Zm9vYmFy",
    ),
    ("private_key", f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}", "Zm9vYmFy"),
    (
        "private_key",
        '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n-----END PRIVATE KEY-----\\n"',
        "MIIEvQIBADAN",
    ),
]
"""(kind, text, a fragment of the secret that must not survive)."""

NOT_SECRETS: list[str] = [
    "def handler(request):\n    return request\n",
    "token = make_token()\n",
    'api_key = os.environ["OPIK_API_KEY"]\n',
    'password: str = ""\n',
    "secret_count = 3\n",
    "tokens_used: int\n",
    "MAX_TOKENS = 4096\n",
    "primary_key=True\n",
    'PRIMARY_KEY = "id"\n',
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
    "    e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  dist.tar.gz\n",
    'files = [{file = "a.whl", hash = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c"}]\n',
    '"integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="\n',
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnop\n",
    "sort_key = lambda item: item.name\n",
    'STATS_KEY = "_hypothesis_stats"\n',
    "args: settings = load(path)\n",
    'ENV_API_KEY = "ANTHROPIC_API_KEY"\n',
    'GRANT_TYPE_REFRESH_TOKEN = "refresh_token"\n',
    'TOKEN_ENDPOINT = "/v1/oauth/token"\n',
    '"input_cost_per_token": 1.5e-06,\n',
    '"cache_read_input_token_cost": "3e-07",\n',
    '"max_tokens": "LEGACY parameter. set to max_output_tokens if provider specifies it",\n',
    'user_api_key_dict: "UserAPIKeyAuth | None" = None,\n',
    "temperature_secret_ratio = 2.5e3\n",
]
"""Lines that must come back unchanged."""
