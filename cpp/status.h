// Status and Result<T>: how fallible C++ in ember reports errors. Exceptions appear only at
// the binding edge (bindings.cc), which maps each StatusCode to one Python exception class.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace ember {

/// What went wrong, coarsely; the message says the rest.
enum class StatusCode : uint8_t {
  kOk = 0,
  kStoreFull,       ///< the object does not fit in the store (-> ObjectStoreFullError)
  kNotFound,        ///< no such object in the store (freed, or never existed)
  kAlreadyExists,   ///< an object with this id was already created
  kInvalid,         ///< bad argument or misuse (-> ValueError)
  kClosed,          ///< the store was shut down (-> ember is not initialized)
  kTableFull,       ///< the object table has no free entry (-> ObjectStoreFullError)
  kIOError,         ///< an OS call failed (-> OSError)
  kNotReady,        ///< the object exists but is not sealed yet (a promise, being written)
  kOutOfDisk,       ///< the store is full and the spill disk too (-> OutOfDiskError)
};

/// A StatusCode plus a message; cheap when ok.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string msg) : code_(code), msg_(std::move(msg)) {}
  static Status OK() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return msg_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string msg_;
};

/// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

/// Formats a byte count for messages: "1.5 GiB", "512.0 KiB", "17 B".
std::string format_bytes(uint64_t n);

}  // namespace ember
