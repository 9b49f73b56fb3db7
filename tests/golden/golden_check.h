// Checks a model against a golden case: the case's sequences evaluated as one
// ragged batch and one by one, with one and two threads, against its expected
// outputs. Shared by the golden fixtures and the TF.js import tests.
#pragma once

#include <string>
#include <vector>

#include "core/eval/sequence_input.h"
#include "core/model/model.h"
#include "golden/golden_case.pb.h"

namespace biserve::testing {

// The cases in `folder`, sorted: its sub-folders' names (`directories`), or
// the stems of its .json files. Empty when the folder is missing.
std::vector<std::string> ListCases(const std::string& folder, bool directories);

// Reads a GoldenCase from proto3 JSON; fails the test on a parse error.
test::GoldenCase ReadGoldenCase(const std::string& path);

// The case's sequences as evaluator inputs, viewing `golden`'s storage.
std::vector<SequenceInput> GoldenBatch(const test::GoldenCase& golden);

// Adds gtest failures for every output that differs from the case's
// expectation by more than its tolerance.
void ExpectMatchesGoldenCase(const Model& model,
                             const test::GoldenCase& golden);

}  // namespace biserve::testing
