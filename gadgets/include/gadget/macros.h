/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Markers that describe a gadget to userspace.
 *
 * Userspace never reads ELF sections to learn what a gadget offers: it walks the object's BTF
 * and looks for global variables whose *names* follow the patterns below (parts separated by
 * three underscores). The variables are never used by the program; declaring them keeps the
 * referenced types in BTF.
 */
#ifndef __GADGET_MACROS_H
#define __GADGET_MACROS_H

/* A stream datasource <name>: records of type struct <struct_name> from ring buffer <map>. */
#define GADGET_TRACER(name, map, struct_name)                                              \
	const void *gadget_tracer_##name##___##map##___##struct_name __attribute__((unused)); \
	const struct struct_name *__gadget_tracer_type_##name __attribute__((unused))

/* A user parameter: the const volatile variable <var> is written into .rodata before load. */
#define GADGET_PARAM(var) const void *gadget_param_##var __attribute__((unused))

/* An array datasource <name> read from the hash map <map> every interval (top_* gadgets). */
#define GADGET_MAPITER(name, map) \
	const void *gadget_mapiter_##name##___##map __attribute__((unused))

/*
 * An array datasource <name> of struct <struct_name> rows written (bpf_seq_write) by one, two or
 * three iterator programs (SEC("iter/...")); the rows of all of them are merged into one array.
 */
#define __GADGET_ITER1(name, struct_name, p1)                                          \
	const void *gadget_iter_##name##___##struct_name##___##p1 __attribute__((unused))
#define __GADGET_ITER2(name, struct_name, p1, p2)                                        \
	const void *gadget_iter_##name##___##struct_name##___##p1##___##p2              \
		__attribute__((unused))
#define __GADGET_ITER3(name, struct_name, p1, p2, p3)                                    \
	const void *gadget_iter_##name##___##struct_name##___##p1##___##p2##___##p3     \
		__attribute__((unused))
#define __GADGET_ITER_PICK(_1, _2, _3, which, ...) which
#define GADGET_ITER(name, struct_name, ...)                                                \
	__GADGET_ITER_PICK(__VA_ARGS__, __GADGET_ITER3, __GADGET_ITER2, __GADGET_ITER1)(   \
		name, struct_name, __VA_ARGS__);                                            \
	const struct struct_name *__gadget_iter_type_##name __attribute__((unused))

/* The same datasource as Inspektor Gadget's older gadgets declare it (same meaning). */
#define __GADGET_SNAPSHOTTER1(name, struct_name, p1)                                          \
	const void *gadget_snapshotter_##name##___##struct_name##___##p1 __attribute__((unused))
#define __GADGET_SNAPSHOTTER2(name, struct_name, p1, p2)                                        \
	const void *gadget_snapshotter_##name##___##struct_name##___##p1##___##p2              \
		__attribute__((unused))
#define __GADGET_SNAPSHOTTER3(name, struct_name, p1, p2, p3)                                    \
	const void *gadget_snapshotter_##name##___##struct_name##___##p1##___##p2##___##p3     \
		__attribute__((unused))
#define GADGET_SNAPSHOTTER(name, struct_name, ...)                                        \
	__GADGET_ITER_PICK(__VA_ARGS__, __GADGET_SNAPSHOTTER3, __GADGET_SNAPSHOTTER2,     \
			   __GADGET_SNAPSHOTTER1)(name, struct_name, __VA_ARGS__);           \
	const struct struct_name *__gadget_snapshotter_type_##name __attribute__((unused))

/* The iter/bpf_map_elem program <prog> walks map <map> (the map's fd goes in the link info). */
#define GADGET_ITER_TARGET_MAP(prog, map) \
	const void *gadget_mapelem_iter_target_##prog##___##map __attribute__((unused))

#endif /* __GADGET_MACROS_H */
