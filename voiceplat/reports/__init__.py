"""After-call work: the call's summary and its report to a Telegram chat.

- `settings`: `ReportsSettings` (config.json `reports`), the TG_* env variables, `check` lines;
- `format`: the report's text from a finished call's snapshot (a file when too long);
- `telegram`: the Bot API client (sendMessage / sendDocument, retries, the token masked);
- `summary`: the LLM's one-two sentence summary of the call;
- `after_call`: `AfterCall`, the bounded queue and worker that does it all off the call path.
"""

from voiceplat.reports.after_call import AfterCall, Amend, Reporter, Summarize, wants_report
from voiceplat.reports.format import Report, build_report, report_text
from voiceplat.reports.settings import ReportsSettings, reports_problems, telegram_env
from voiceplat.reports.summary import summarize
from voiceplat.reports.telegram import TelegramClient, TelegramError

__all__ = [
    "AfterCall",
    "Amend",
    "Report",
    "Reporter",
    "ReportsSettings",
    "Summarize",
    "TelegramClient",
    "TelegramError",
    "build_report",
    "report_text",
    "reports_problems",
    "summarize",
    "telegram_env",
    "wants_report",
]
