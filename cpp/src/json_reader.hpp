#pragma once
/// @file
/// @brief A small JSON reader for the metadata embedded in exported policy files (objects, arrays,
/// strings, numbers, booleans, null). Not a general-purpose library: no \u escapes beyond ASCII.

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sobolev_warmstart::detail {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  bool has(const std::string &key) const { return kind == Kind::Object && object.count(key) > 0; }
  /// Member `key` of an object; throws std::invalid_argument naming `where` and the key.
  const JsonValue &at(const std::string &key, const std::string &where) const {
    if (kind != Kind::Object || !object.count(key))
      throw std::invalid_argument(where + ": metadata has no field '" + key + "'");
    return object.at(key);
  }
  int as_int(const std::string &what) const {
    if (kind != Kind::Number || number != double(int(number)))
      throw std::invalid_argument(what + ": expected an integer in the metadata");
    return int(number);
  }
  double as_double(const std::string &what) const {
    if (kind != Kind::Number) throw std::invalid_argument(what + ": expected a number in the metadata");
    return number;
  }
  const std::string &as_string(const std::string &what) const {
    if (kind != Kind::String) throw std::invalid_argument(what + ": expected a string in the metadata");
    return string;
  }
};

class JsonParser {
public:
  explicit JsonParser(const std::string &text) : s_(text) {}

  JsonValue parse() {
    JsonValue v = value();
    skip();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

private:
  [[noreturn]] void fail(const std::string &why) const {
    throw std::invalid_argument("invalid JSON metadata (" + why + " at offset " + std::to_string(i_) + ")");
  }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool literal(const char *word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) == 0) {
      i_ += w.size();
      return true;
    }
    return false;
  }
  JsonValue value() {
    JsonValue v;
    const char c = peek();
    if (c == '{') {
      v.kind = JsonValue::Kind::Object;
      ++i_;
      if (peek() == '}') { ++i_; return v; }
      while (true) {
        std::string key = str();
        expect(':');
        v.object[key] = value();
        if (peek() == ',') { ++i_; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = JsonValue::Kind::Array;
      ++i_;
      if (peek() == ']') { ++i_; return v; }
      while (true) {
        v.array.push_back(value());
        if (peek() == ',') { ++i_; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = JsonValue::Kind::String;
      v.string = str();
      return v;
    }
    if (literal("true")) { v.kind = JsonValue::Kind::Bool; v.boolean = true; return v; }
    if (literal("false")) { v.kind = JsonValue::Kind::Bool; return v; }
    if (literal("null")) return v;
    std::size_t end = 0;
    try {
      v.number = std::stod(s_.substr(i_), &end);
    } catch (const std::exception &) {
      fail("expected a value");
    }
    i_ += end;
    v.kind = JsonValue::Kind::Number;
    return v;
  }
  std::string str() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          const int code = std::stoi(s_.substr(i_, 4), nullptr, 16);
          i_ += 4;
          out += code < 128 ? char(code) : '?';
          break;
        }
        default: out += e;
      }
    }
  }

  const std::string &s_;
  std::size_t i_ = 0;
};

inline JsonValue parse_json(const std::string &text) { return JsonParser(text).parse(); }

} // namespace sobolev_warmstart::detail
