"""One error type for services and API: a stable `code`, an HTTP status, and a message in en and
zh-CN. The API renders it as JSON {"code", "message", "message_zh"}."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, message_zh: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.message_zh = message_zh or message

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "message_zh": self.message_zh}


def bad_request(code: str, message: str, message_zh: str = "") -> ApiError:
    return ApiError(400, code, message, message_zh)


def unauthorized(message: str = "missing or wrong API key",
                 message_zh: str = "缺少或错误的 API 密钥") -> ApiError:
    return ApiError(401, "unauthorized", message, message_zh)


def not_found(code: str, message: str, message_zh: str = "") -> ApiError:
    return ApiError(404, code, message, message_zh)


def conflict(code: str, message: str, message_zh: str = "") -> ApiError:
    return ApiError(409, code, message, message_zh)
