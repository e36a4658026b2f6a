"""Tools the LLM may call: webhooks from config.json and the built-in transfer / end_call."""

from voiceplat.tools.settings import BuiltinTool, Tool, ToolList, WebhookTool, parse_tools
from voiceplat.tools.toolbox import ToolBox, ToolResult

__all__ = ["BuiltinTool", "Tool", "ToolBox", "ToolList", "ToolResult", "WebhookTool", "parse_tools"]
